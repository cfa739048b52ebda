"""Fault personas as values: validation per scope, seeded repeatability, latency bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.harness.faults import ActiveFault, FaultError, Persona, validate_persona


def active(persona: dict[str, object]) -> ActiveFault:
    return ActiveFault("smpp:shop", Persona.model_validate(persona), lambda scope, effect: None)


def test_same_seed_same_receipts() -> None:
    persona = {"receipts": {"DELIVRD": 40, "UNDELIV": 30, "EXPIRED": 20, "REJECTD": 10}, "seed": 3}
    first, second = active(persona), active(persona)
    assert [first.receipt() for _ in range(100)] == [second.receipt() for _ in range(100)]


@settings(max_examples=100, deadline=None)
@given(
    low=st.floats(min_value=0, max_value=5000),
    extra=st.floats(min_value=0, max_value=5000),
    seed=st.integers(),
)
def test_latency_stays_within_its_span(low: float, extra: float, seed: int) -> None:
    fault = active({"latency_ms": {"min": low, "max": low + extra}, "seed": seed})
    for _ in range(5):
        assert low / 1000 <= fault.latency_s() <= (low + extra) / 1000


@pytest.mark.parametrize(
    ("scope", "persona", "field"),
    [
        ("global", {"throttle": {"per_second": 1}}, "throttle"),
        ("smpp:shop", {"error": {"http_status": 500}}, "error"),
        ("smpp:shop", {"receipts": {"DELIVRD": 99}}, "receipts"),
        ("app:*1#", {"unbind_after": 0}, "unbind_after"),
    ],
)
def test_personas_refused_with_the_field(scope: str, persona: object, field: str) -> None:
    with pytest.raises(FaultError) as refused:
        validate_persona(scope, persona)
    assert (refused.value.status, refused.value.field) == (400, field)
