"""The client's reading of the event stream (Server-Sent Events), without a server."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ussdsim.client import _sse_events, parse_sse


def test_the_data_lines_are_the_payload_and_the_rest_is_framing() -> None:
    assert parse_sse(["id: 1-0", "event: x", 'data: {"kind": "x"}']) == {"kind": "x"}
    assert parse_sse([": keepalive"]) is None
    assert parse_sse(["data: not json"]) is None
    assert parse_sse(["data: [1, 2]"]) is None  # an event is an object


def test_a_payload_split_over_data_lines_is_joined() -> None:
    assert parse_sse(['data: {"kind":', 'data: "sms.mo"}']) == {"kind": "sms.mo"}


events = st.dictionaries(
    st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=12), max_size=4
)


@given(st.lists(events, max_size=5))
def test_a_stream_of_blocks_gives_back_every_event_in_order(sent: list[dict[str, Any]]) -> None:
    lines: list[str] = [": keepalive", ""]
    for n, event in enumerate(sent):
        lines += [f"id: {n}-0", "event: e", f"data: {json.dumps(event)}", ""]
    assert list(_sse_events(lines)) == sent
