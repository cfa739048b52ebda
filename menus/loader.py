"""Loading menu files and reporting every problem with its file, screen and reason.

`check_paths` never raises on a bad file: it collects problems (YAML syntax with its line, schema
errors turned into readable reasons, whole-menu checks, duplicate ids across files) so that
`ussdsim menus check` can print them all and a running server can refuse a bad set while it keeps
serving the last good one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from menus.checks import check_menu
from menus.schema import Menu, MenuPart

DEFAULT_PROFILE_DIR: Path = Path(__file__).resolve().parent / "profiles" / "default"
MENU_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    file: str
    screen: str | None
    reason: str

    def __str__(self) -> str:
        if self.screen is None:
            return f"{self.file}: {self.reason}"
        return f"{self.file}: {self.screen}: {self.reason}"


class MenuLoadError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class UnknownMenu(KeyError):
    pass


@dataclass(frozen=True)
class MenuSet:
    menus: dict[str, Menu]
    sources: dict[str, Path] = field(default_factory=dict)

    def get(self, menu_id: str) -> Menu:
        try:
            return self.menus[menu_id]
        except KeyError:
            raise UnknownMenu(menu_id) from None

    @property
    def screen_count(self) -> int:
        return sum(len(menu.screens) for menu in self.menus.values())


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the last).

    Booleans follow YAML 1.2 (`true`/`false` only): in YAML 1.1 the key `on:` of an action
    screen, or an answer `no`, would silently become a boolean.
    """


_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool | None):
            continue  # construct_mapping below reports an unhashable key
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _menu_files(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in MENU_SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(str(path), None, "no menu files (*.yaml) in directory"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), None, "no such file or directory"))
    return files, problems


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return Problem(file, None, f"YAML syntax: {where}{what}")


def _schema_problems(file: str, data: Any, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        screen: str | None = None
        if len(loc) >= 2 and loc[0] == "screens" and isinstance(loc[1], str):
            screen = loc[1]
            loc = loc[2:]
            screens = data.get("screens") if isinstance(data, dict) else None
            raw = screens.get(screen) if isinstance(screens, dict) else None
            if loc and isinstance(raw, dict) and loc[0] == raw.get("type"):
                loc = loc[1:]  # the union tag pydantic inserts, not a field of the file
        problems.append(Problem(file, screen, _reason(loc, error)))
    return problems


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(loc: Sequence[Any], error: Any) -> str:
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        parent, name = _path(loc[:-1]), loc[-1]
        return f"unknown field {name!r}" + (f" in {parent}" if parent else "")
    if kind == "missing":
        parent, name = _path(loc[:-1]), loc[-1]
        return f"missing field {name!r}" + (f" in {parent}" if parent else "")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return f"unknown screen type {tag!r} (expected menu, input, action or end)"
    if kind == "union_tag_not_found":
        return "missing field 'type' (menu, input, action or end)"
    where = _path(loc)
    return f"{where}: {message}" if where else message


def _read_file(path: Path) -> tuple[Menu | MenuPart | None, list[Problem]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(file, None, f"cannot read: {exc}")]
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        return None, [_yaml_problem(file, exc)]
    if not isinstance(data, dict):
        return None, [Problem(file, None, "a menu file must be a mapping (id, start, screens)")]
    model: type[Menu | MenuPart] = MenuPart if "part_of" in data else Menu
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _schema_problems(file, data, exc)


def _merge_parts(
    menus: dict[str, Menu],
    screen_files: dict[str, dict[str, Path]],
    parts: list[tuple[Path, MenuPart]],
) -> list[Problem]:
    problems: list[Problem] = []
    for path, part in parts:
        menu = menus.get(part.part_of)
        if menu is None:
            problems.append(Problem(str(path), None, f"part_of: no menu with id {part.part_of!r}"))
            continue
        clashes = sorted(set(part.screens) & set(menu.screens))
        for name in clashes:
            other = screen_files[menu.id][name]
            problems.append(Problem(str(path), name, f"screen defined twice (also in {other})"))
        if clashes:
            continue
        var_clashes = sorted(
            name for name in set(part.vars) & set(menu.vars) if part.vars[name] != menu.vars[name]
        )
        for name in var_clashes:
            problems.append(Problem(str(path), None, f"variable {name!r} declared differently"))
        if var_clashes:
            continue
        menus[menu.id] = menu.model_copy(
            update={
                "screens": {**menu.screens, **part.screens},
                "vars": {**menu.vars, **part.vars},
            }
        )
        screen_files[menu.id].update(dict.fromkeys(part.screens, path))
    return problems


def check_paths(paths: Sequence[Path]) -> tuple[MenuSet | None, list[Problem]]:
    """Check menu files (and *.yaml in directories); the set is returned only when all is well."""
    files, problems = _menu_files(Path(p) for p in paths)
    menus: dict[str, Menu] = {}
    sources: dict[str, Path] = {}
    screen_files: dict[str, dict[str, Path]] = {}
    parts: list[tuple[Path, MenuPart]] = []
    for path in files:
        doc, found = _read_file(path)
        problems += found
        if isinstance(doc, MenuPart):
            parts.append((path, doc))
        elif isinstance(doc, Menu):
            if doc.id in sources:
                reason = f"duplicate menu id {doc.id!r} (also in {sources[doc.id]})"
                problems.append(Problem(str(path), None, reason))
                continue
            menus[doc.id], sources[doc.id] = doc, path
            screen_files[doc.id] = dict.fromkeys(doc.screens, path)
    problems += _merge_parts(menus, screen_files, parts)
    for menu_id, menu in menus.items():
        for screen, reason in check_menu(menu):
            where = screen_files[menu_id].get(screen, sources[menu_id]) if screen else None
            problems.append(Problem(str(where or sources[menu_id]), screen, reason))
    if problems:
        return None, problems
    return MenuSet(menus, sources), []


def load_menus(paths: Sequence[Path]) -> MenuSet:
    menu_set, problems = check_paths(paths)
    if menu_set is None:
        raise MenuLoadError(problems)
    return menu_set


def check_command(paths: Sequence[str]) -> int:
    """`ussdsim menus check [PATH...]`: one line per problem, exit status 1 when there is any."""
    targets = [Path(p) for p in paths] or [DEFAULT_PROFILE_DIR]
    menu_set, problems = check_paths(targets)
    for problem in problems:
        print(problem)
    if menu_set is None:
        return 1
    print(f"ok: {len(menu_set.menus)} menus, {menu_set.screen_count} screens")
    return 0
