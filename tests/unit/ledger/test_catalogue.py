"""The operator catalogue: the shipped default is usable, broken files are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ledger.catalogue import (
    MAX_NAME_LENGTH,
    CatalogueError,
    default_catalogue,
    load_catalogue,
    parse_catalogue,
)
from ledger.service import DEFAULT_SETTINGS

MINIMAL = """
tariffs:
  - id: basic
    names: {ru: "Базовый", en: "Basic"}
    monthly_fee_kop: 0
    packages: {minutes: 0, sms: 0, mb: 0}
"""


def test_default_catalogue_is_realistic() -> None:
    catalogue = default_catalogue()
    assert len(catalogue.tariffs) >= 4 and len(catalogue.options) >= 6
    assert len(catalogue.subscriptions()) >= 2
    assert all(s.price_kop > 0 for s in catalogue.subscriptions())
    assert len(catalogue.rewards) >= 6
    # New subscribers start on the ledger's default tariff: it must be in the catalogue.
    assert catalogue.tariff(DEFAULT_SETTINGS.default_tariff) is not None
    points = catalogue.points
    assert (points.mobile, points.shop, points.home, points.partner, points.partner_bank) == (
        500,
        3000,
        500,
        3000,
        2000,
    )
    detail = catalogue.detail
    assert (detail.min_days, detail.max_days, detail.ready_after_s) == (7, 183, 300)
    assert detail.formats == ["html", "pdf", "xml", "xlsx"]


def test_default_names_fit_a_russian_ussd_line() -> None:
    catalogue = default_catalogue()
    all_names = [
        *(t.names for t in catalogue.tariffs),
        *(o.names for o in catalogue.options),
        *(r.names for r in catalogue.rewards),
    ]
    for names in all_names:
        for name in (names.ru, names.en):
            # "N <name> 1234,56 руб." must stay within 80 UCS-2 characters.
            assert len(f"99 {name} 99999,99 руб.") <= 80
        assert names.get("en") == names.en and names.get("ru") == names.ru


def test_reward_grants_are_one_thing_each() -> None:
    catalogue = default_catalogue()
    for reward in catalogue.rewards:
        option = reward.grants.option
        assert (option is None) == bool(reward.grants.units())
        if option is not None:
            assert catalogue.option(option) is not None


def test_minimal_catalogue_gets_default_rules() -> None:
    catalogue = parse_catalogue(MINIMAL)
    assert catalogue.options == [] and catalogue.rewards == []
    assert catalogue.points.mobile == 500 and catalogue.detail.max_days == 183
    assert catalogue.tariff("basic") is not None and catalogue.tariff("nope") is None


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(MINIMAL, "utf-8")
    assert load_catalogue(path).tariffs[0].names.ru == "Базовый"


def test_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "absent.yaml")


def with_changes(path: str, value: object) -> str:
    """MINIMAL plus one section or a change inside the first tariff."""
    data = yaml.safe_load(MINIMAL)
    target = data
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[last] = value
    return yaml.safe_dump(data, allow_unicode=True)


OPTION = {
    "id": "weather",
    "names": {"ru": "Погода", "en": "Weather"},
    "price_kop": 100,
    "period_days": 1,
    "kind": "subscription",
}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tariffs: [", "not valid YAML"),
        ("- just a list", "top level must be a mapping"),
        ("tariffs: []", "tariffs"),
        (with_changes("colour", "red"), "colour: Extra inputs are not permitted"),
        (with_changes("tariffs.0.fee", 5), "tariffs.0.fee"),
        (with_changes("tariffs.0.monthly_fee_kop", -1), "tariffs.0.monthly_fee_kop"),
        (with_changes("tariffs.0.monthly_fee_kop", "100"), "tariffs.0.monthly_fee_kop"),
        (with_changes("tariffs.0.id", "Has Space"), "tariffs.0.id"),
        (with_changes("tariffs.0.names", {"ru": "Б" * (MAX_NAME_LENGTH + 1), "en": "B"}), "ru"),
        (with_changes("tariffs.0.names", {"ru": "Базовый"}), "names.en"),
        (with_changes("tariffs.0.packages", {"minutes": 1, "gb": 2}), "gb"),
        (with_changes("options", [OPTION, OPTION]), "duplicate id weather"),
        (with_changes("options", [{**OPTION, "kind": "bundle"}]), "options.0.kind"),
        (with_changes("options", [{**OPTION, "period_days": -1}]), "period_days"),
        (
            with_changes(
                "rewards",
                [{"id": "r", "names": {"ru": "Р", "en": "R"}, "points": 5, "grants": {}}],
            ),
            "exactly one",
        ),
        (
            with_changes(
                "rewards",
                [
                    {
                        "id": "r",
                        "names": {"ru": "Р", "en": "R"},
                        "points": 5,
                        "grants": {"sms": 5, "mb": 5},
                    }
                ],
            ),
            "exactly one",
        ),
        (
            with_changes(
                "rewards",
                [
                    {
                        "id": "r",
                        "names": {"ru": "Р", "en": "R"},
                        "points": 5,
                        "grants": {"option": "missing"},
                    }
                ],
            ),
            "grants unknown option missing",
        ),
        (with_changes("points", {"mobile": 0}), "points.mobile"),
        (with_changes("points", {"bank": 10}), "points.bank"),
        (with_changes("detail", {"min_days": 30, "max_days": 7}), "min_days is greater"),
        (with_changes("detail", {"formats": ["doc"]}), "detail.formats.0"),
        (with_changes("detail", {"formats": []}), "detail.formats"),
    ],
)
def test_bad_catalogues_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(text, "test.yaml")
    assert str(info.value).startswith("test.yaml: ")
    assert message in str(info.value)
