"""The `malformed` persona effect: its valid and invalid fixtures, and its seeded draws.

Each fixture's first line names the scope it is set on and, for an invalid one, the field the
refusal must name: `# SCOPE — FIELD`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.harness.faults import ActiveFault, FaultError, Persona, validate_persona
from sms.smpp.malformed import KINDS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "personas" / "malformed"


def _header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].lstrip("# ").split(" — ")


def _cases(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.yaml"))


@pytest.mark.parametrize("path", _cases("valid"), ids=lambda p: p.stem)
def test_valid_fixtures(path: Path) -> None:
    scope, _ = _header(path)
    persona = validate_persona(scope, yaml.safe_load(path.read_text()))
    assert "malformed" in persona.effects()


@pytest.mark.parametrize("path", _cases("invalid"), ids=lambda p: p.stem)
def test_invalid_fixtures(path: Path) -> None:
    scope, field = _header(path)
    with pytest.raises(FaultError) as refused:
        validate_persona(scope, yaml.safe_load(path.read_text()))
    assert (refused.value.status, refused.value.field) == (400, field)


def draws(persona: dict[str, object], n: int = 200) -> list[str | None]:
    fault = ActiveFault("smpp:shop", Persona.model_validate(persona), lambda scope, effect: None)
    return [fault.malformed() for _ in range(n)]


def test_the_same_seed_draws_the_same_kinds() -> None:
    persona = {"malformed": {"probability": 0.5}, "seed": 9}
    first = draws(persona)
    assert first == draws(persona)
    assert first != draws({**persona, "seed": 10})
    assert {k for k in first if k is not None} == set(KINDS)  # the default is every kind
    assert None in first


def test_only_the_listed_kinds_and_probability_zero_never() -> None:
    assert set(draws({"malformed": {"kinds": ["truncated", "generic_nack"]}})) == {
        "truncated",
        "generic_nack",
    }
    assert set(draws({"malformed": {"probability": 0}})) == {None}
