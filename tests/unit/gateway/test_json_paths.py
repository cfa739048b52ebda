"""The hot paths' JSON (orjson where it reads and writes the same) against the json module."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.harness.events import compact_json
from gateway.http.endpoint import json_response
from gateway.http.guards import MAX_INT_DIGITS, load_json
from shared.errors import ApiError

# Any JSON value, with integers of every size up to the bound and text in any script.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**MAX_INT_DIGITS) + 1, max_value=10**MAX_INT_DIGITS - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_load_json_reads_what_json_reads(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()
    expected = json.loads(raw)  # what load_json read before orjson
    got = load_json(raw)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # ints stay ints, of the same digits


@pytest.mark.parametrize(
    "body",
    [b"18446744073709551616", b"-9223372036854775809", b'{"amount": 12345678901234567890123}'],
)
def test_integers_past_64_bits_keep_every_digit(body: bytes) -> None:
    got = load_json(body)
    assert got == json.loads(body)
    assert json.dumps(got) == json.dumps(json.loads(body))  # an int, not a float near it


def _refuse(name: str) -> Any:
    raise ValueError(name)


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b"1e400", b"\xff", b"{"])
def test_what_is_not_json_is_refused_or_read_as_before(body: bytes) -> None:
    try:
        expected: Any = json.loads(body, parse_constant=_refuse)
    except ValueError:
        with pytest.raises(ApiError) as refused:
            load_json(body)
        assert refused.value.code == "malformed_json"
    else:
        assert load_json(body) == expected


@given(values)
def test_compact_json_is_what_json_dumps_writes(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(compact_json(value)) == json.loads(expected)
    assert compact_json({"b": value, "a": 1}).startswith('{"b":')  # keys in their order


def test_json_response_is_utf8_json_in_key_order() -> None:
    response = json_response({"text": "Баланс: 100 ₽", "end": True, "b": 1, "a": 2}, status=201)
    assert response.status == 201
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    assert isinstance(response.body, bytes)
    assert response.body.decode("utf-8") == '{"text":"Баланс: 100 ₽","end":true,"b":1,"a":2}'


def test_json_response_takes_integers_past_64_bits() -> None:
    response = json_response({"n": 2**70})
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {"n": 2**70}
