"""A mistyped configuration key is refused with the closest key the section knows."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("document", "refusal"),
    [
        (
            "http: {listn: 127.0.0.1:0}",
            "http.listn: Extra inputs are not permitted (did you mean listen?)",
        ),
        ("rooutes: []", "rooutes: Extra inputs are not permitted (did you mean routes?)"),
        # through a list, a mapping and an optional section
        (
            "routes: [{code: '*1#', menu: x, mneu: y}]",
            "routes.0.mneu: Extra inputs are not permitted (did you mean menu?)",
        ),
        (
            "faults: {global: {latncy_ms: 3}}",
            "faults.global.latncy_ms: Extra inputs are not permitted (did you mean latency_ms?)",
        ),
        (
            "smpp: {upstream: {address: 'h:1', system_id: a, adress: x}}",
            "smpp.upstream.adress: Extra inputs are not permitted (did you mean address?)",
        ),
    ],
)
def test_the_closest_known_key_is_named(tmp_path: Path, document: str, refusal: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(document + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    assert refusal in str(refused.value)


def test_a_key_like_none_gets_no_guess(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("http: {zzzzzz: 1}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    assert str(refused.value).endswith("http.zzzzzz: Extra inputs are not permitted")
