"""A menu spread over several files: `part_of` merges screens before the whole-menu checks."""

from __future__ import annotations

from pathlib import Path

from menus import engine
from menus.loader import check_paths

MAIN = """
id: shop
start: root
screens:
  root:
    type: menu
    text: {ru: "Магазин", en: "Shop"}
    options:
      - {key: "1", text: {ru: "Оплата", en: "Pay"}, next: pay}
"""

PART = """
part_of: shop
screens:
  pay:
    type: end
    text: {ru: "Оплачено", en: "Paid"}
"""


def write(folder: Path, **files: str) -> Path:
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def test_parts_merge_into_their_menu_and_targets_cross_files(tmp_path: Path) -> None:
    menus, problems = check_paths([write(tmp_path, a_main=MAIN, b_part=PART)])
    assert problems == []
    assert menus is not None
    menu = menus.get("shop")
    assert set(menu.screens) == {"root", "pay"}
    first = engine.start(menu, lang="en")
    assert isinstance(first, engine.Screen)
    paid = engine.answer(menu, first.state, "1")
    assert isinstance(paid, engine.Screen) and paid.end and paid.text == "Paid"


def test_part_order_does_not_matter(tmp_path: Path) -> None:
    menus, problems = check_paths([write(tmp_path, a_part=PART, z_main=MAIN)])
    assert problems == [] and menus is not None


def test_part_of_an_unknown_menu_is_a_problem(tmp_path: Path) -> None:
    _, problems = check_paths([write(tmp_path, a_main=MAIN, b_part=PART.replace("shop", "nope"))])
    assert any("b_part.yaml" in p.file and "no menu with id 'nope'" in p.reason for p in problems)


def test_a_screen_defined_in_two_files_is_a_problem(tmp_path: Path) -> None:
    clash = PART.replace("pay:", "root:")
    _, problems = check_paths([write(tmp_path, a_main=MAIN, b_part=clash)])
    assert any(p.screen == "root" and "defined twice" in p.reason for p in problems)


def test_problems_name_the_file_that_holds_the_screen(tmp_path: Path) -> None:
    orphan = (
        PART
        + """  lost:
    type: end
    text: {ru: "Нигде", en: "Nowhere"}
"""
    )
    _, problems = check_paths([write(tmp_path, a_main=MAIN, b_part=orphan)])
    lost = [p for p in problems if p.screen == "lost"]
    assert lost and lost[0].file.endswith("b_part.yaml")
    assert "reachable" in lost[0].reason
