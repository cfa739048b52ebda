"""The menu checker: each invalid fixture is refused with its screen and reason, valid ones pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from menus.loader import (
    DEFAULT_PROFILE_DIR,
    MenuLoadError,
    Problem,
    UnknownMenu,
    check_command,
    check_paths,
    load_menus,
)
from sms.encoding import ussd_fits

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "menus"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"

# file -> (screen, reason substring) of the one problem the checker must report
EXPECTED: dict[str, tuple[str | None, str]] = {
    "menu.yaml": ("root", "option key '1' is used twice"),
    "menu_reserved_key.yaml": ("root", "key '99' is reserved"),
    "menu_missing_target.yaml": ("root", "target 'nowhere' does not exist"),
    "long_menu_line.yaml": ("root", "(ru) a line is too long for a page"),
    "input.yaml": ("code", "a regex input needs a pattern"),
    "action.yaml": ("enable", "outcomes not handled and no default: already_enabled, blocked"),
    "action_unknown.yaml": ("fly", "unknown action 'launch_rocket'"),
    "action_missing_arg.yaml": ("enable", "action 'enable_service' needs argument 'service'"),
    "end.yaml": ("bye", "text (ru) too long: 84 ucs2 characters, limit 80"),
    "end_missing_en.yaml": ("bye", "missing field 'en' in text"),
    "unreachable.yaml": ("lost", "unreachable from start screen 'bye'"),
    "unknown_filter.yaml": ("bye", "text (ru): unknown filter 'lower'"),
    "unknown_type.yaml": ("bye", "unknown screen type 'farewell'"),
    "unknown_field.yaml": ("bye", "unknown field 'colour'"),
    "yaml_syntax.yaml": (None, "YAML syntax: line 7, column 1"),
    "duplicate_key.yaml": (None, "YAML syntax: line 7, column 3: duplicate key 'bye'"),
    "bad_start.yaml": (None, "start screen 'welcome' does not exist"),
}


def test_every_invalid_fixture_has_an_expectation() -> None:
    on_disk = {path.name for path in INVALID.glob("*.yaml")} - {"unknown_variable.yaml"}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture_reports_its_problem(name: str) -> None:
    menu_set, problems = check_paths([INVALID / name])
    screen, reason = EXPECTED[name]
    assert menu_set is None
    assert len(problems) == 1, problems
    assert problems[0].file == str(INVALID / name)
    assert problems[0].screen == screen
    assert reason in problems[0].reason


def test_unknown_variable_is_reported_per_language() -> None:
    _, problems = check_paths([INVALID / "unknown_variable.yaml"])
    assert [(p.screen, p.reason) for p in problems] == [
        ("bye", "text (ru): unknown variable 'balance_kop'"),
        ("bye", "text (en): unknown variable 'balance_kop'"),
    ]


@pytest.mark.parametrize("screen_type", ["menu", "input", "action", "end"])
def test_valid_fixture_of_each_screen_type_passes(screen_type: str) -> None:
    menu_set, problems = check_paths([VALID / f"{screen_type}.yaml"])
    assert problems == []
    assert menu_set is not None
    assert menu_set.get(f"{screen_type}_ok").id == f"{screen_type}_ok"


def test_default_profile_checks_clean() -> None:
    menu_set = load_menus([DEFAULT_PROFILE_DIR])
    assert set(menu_set.menus) == {"selfcare", "balance", "unblock"}
    assert DEFAULT_PROFILE_DIR.is_relative_to(Path(__file__).resolve().parents[3] / "menus")


def test_default_profile_has_the_seed_codes() -> None:
    selfcare = load_menus([DEFAULT_PROFILE_DIR]).get("selfcare")
    root = selfcare.screens[selfcare.start]
    keys = {option.key: option for option in getattr(root, "options", [])}
    assert keys["25"].hidden and keys["828"].hidden
    assert not keys["1"].hidden


def test_problem_prints_file_screen_and_reason() -> None:
    assert str(Problem("a.yaml", "root", "bad")) == "a.yaml: root: bad"
    assert str(Problem("a.yaml", None, "bad")) == "a.yaml: bad"


def test_duplicate_menu_ids_across_files(tmp_path: Path) -> None:
    for name in ("one.yaml", "two.yaml"):
        (tmp_path / name).write_text((VALID / "end.yaml").read_text(encoding="utf-8"), "utf-8")
    menu_set, problems = check_paths([tmp_path])
    assert menu_set is None
    assert [(p.file, p.screen) for p in problems] == [(str(tmp_path / "two.yaml"), None)]
    assert "duplicate menu id 'end_ok'" in problems[0].reason


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    _, problems = check_paths([tmp_path / "nope.yaml", tmp_path])
    assert [p.reason for p in problems] == [
        "no such file or directory",
        "no menu files (*.yaml) in directory",
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    _, problems = check_paths([path])
    assert "must be a mapping" in problems[0].reason


def test_yaml_1_1_booleans_stay_strings(tmp_path: Path) -> None:
    # `on:` and `no` would be booleans under YAML 1.1; a menu means the words.
    path = tmp_path / "words.yaml"
    path.write_text(
        "id: words\nstart: ask\nscreens:\n"
        "  ask:\n    type: action\n    action: issue_password\n    on: {default: no}\n"
        "  no:\n    type: end\n    text: {ru: 'нет', en: 'no'}\n",
        encoding="utf-8",
    )
    menu_set, problems = check_paths([path])
    assert problems == []
    assert menu_set is not None
    assert "no" in menu_set.get("words").screens


def test_load_menus_raises_with_all_problems() -> None:
    with pytest.raises(MenuLoadError) as raised:
        load_menus([INVALID / "menu.yaml", INVALID / "end.yaml"])
    assert len(raised.value.problems) == 2
    assert "option key '1' is used twice" in str(raised.value)


def test_unknown_menu_id_is_a_typed_error() -> None:
    with pytest.raises(UnknownMenu):
        load_menus([DEFAULT_PROFILE_DIR]).get("nope")


def test_check_command_prints_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command([str(VALID)]) == 0
    assert capsys.readouterr().out == "ok: 4 menus, 8 screens\n"


def test_check_command_defaults_to_the_shipped_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command([]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 menus, ")


def test_check_command_prints_one_line_per_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command([str(INVALID / "unknown_variable.yaml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{INVALID / 'unknown_variable.yaml'}: bye: text (ru): unknown variable 'balance_kop'",
        f"{INVALID / 'unknown_variable.yaml'}: bye: text (en): unknown variable 'balance_kop'",
    ]


def test_built_in_messages_fit_the_limit() -> None:
    for menu in load_menus([DEFAULT_PROFILE_DIR]).menus.values():
        for field_name in type(menu.messages).model_fields:
            text = getattr(menu.messages, field_name)
            assert ussd_fits(text.ru) and ussd_fits(text.en)
