"""Options that assign session values, so one list of choices leads to one shared screen; and the
list text that fits one screen line."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.actions.offers import fit_list
from menus import engine
from menus.checks import check_menu, known_vars
from menus.schema import Menu

PICK = yaml.safe_load(
    """
id: pick
start: root
screens:
  root:
    type: menu
    text: {ru: "Период", en: "Period"}
    options:
      - {key: "1", text: {ru: "Неделя", en: "Week"}, assign: {days: 7, label: week}, next: shown}
      - {key: "2", text: {ru: "Месяц", en: "Month"}, assign: {days: 30, label: month}, next: shown}
  shown:
    type: end
    text: {ru: "{days} дн. ({label})", en: "{days} days ({label})"}
"""
)


def test_a_choice_assigns_its_values() -> None:
    menu = Menu.model_validate(PICK)
    first = engine.start(menu, lang="en")
    assert isinstance(first, engine.Screen)
    done = engine.answer(menu, first.state, "2")
    assert isinstance(done, engine.Screen) and done.end
    assert done.text == "30 days (month)"
    assert done.state.vars == {"days": 30, "label": "month"}


def test_shortcut_fields_assign_too() -> None:
    menu = Menu.model_validate(PICK)
    done = engine.start(menu, lang="ru", prefilled=["1"])
    assert isinstance(done, engine.Screen) and done.text == "7 дн. (week)"


def test_assigned_values_are_known_variables() -> None:
    menu = Menu.model_validate(PICK)
    assert check_menu(menu) == []
    known = known_vars(menu)
    assert {spec.kind for spec in known["days"]} == {"digits"}
    assert max(spec.max_len or 0 for spec in known["label"]) == len("month")


def test_an_unassigned_variable_is_still_refused() -> None:
    broken = {**PICK, "screens": {**PICK["screens"]}}
    broken["screens"]["shown"] = {"type": "end", "text": {"ru": "{weeks}", "en": "{weeks}"}}
    problems = check_menu(Menu.model_validate(broken))
    assert any("unknown variable 'weeks'" in reason for _, reason in problems)


def test_fit_list_counts_what_does_not_fit() -> None:
    assert fit_list([]) == ""
    assert fit_list(["a", "b"], 10) == "a, b"
    assert fit_list(["aaaa", "bbbb", "cccc"], 10) == "aaaa +2"
    assert fit_list(["a" * 20], 10) == "+1"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="абвxyz9 ", min_size=1, max_size=15), max_size=12),
    st.integers(min_value=6, max_value=60),
)
def test_fit_list_stays_within_the_limit_and_loses_no_count(items: list[str], limit: int) -> None:
    text = fit_list(items, limit)
    assert len(text) <= limit
    shown = [part for part in text.split(" +")[0].split(", ") if part] if items else []
    hidden = int(text.rsplit("+", 1)[1]) if "+" in text else 0
    if text.startswith("+"):
        shown = []
    assert len(shown) + hidden == len(items)
