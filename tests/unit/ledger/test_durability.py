"""What strict durability asks of a Redis server's persistence settings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.durability import STRICT_SETTINGS, strict_problems


def test_strict_is_met_by_an_append_only_file_fsynced_on_every_write() -> None:
    assert strict_problems({"appendonly": "yes", "appendfsync": "always"}) == []


def test_each_weaker_setting_is_named_with_its_fix() -> None:
    problems = strict_problems({"appendonly": "no", "appendfsync": "everysec"})
    assert problems == [
        "the Redis server has appendonly no, strict needs yes "
        "(CONFIG SET appendonly yes, and the same in its redis.conf)",
        "the Redis server has appendfsync everysec, strict needs always "
        "(CONFIG SET appendfsync always, and the same in its redis.conf)",
    ]


def test_a_setting_the_server_did_not_report_is_not_taken_as_met() -> None:
    assert strict_problems({"appendonly": "yes"}) == [
        "the Redis server has appendfsync unknown, strict needs always "
        "(CONFIG SET appendfsync always, and the same in its redis.conf)"
    ]


@given(st.dictionaries(st.sampled_from(sorted(STRICT_SETTINGS)), st.text(max_size=10)))
def test_a_problem_for_exactly_each_setting_that_differs(settings: dict[str, str]) -> None:
    problems = strict_problems(settings)
    differing = [name for name, wanted in STRICT_SETTINGS.items() if settings.get(name) != wanted]
    assert len(problems) == len(differing)
    for name, line in zip(differing, problems, strict=True):
        assert f"has {name} " in line and f"CONFIG SET {name} {STRICT_SETTINGS[name]}" in line
