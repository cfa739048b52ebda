"""The rooms' import rules, read from the source: what may import what, and no cycles.

A rule broken here is a design change, not a test to loosen: the cores (`menus/`, `ledger/`) stay
usable without the edges, `sms/` stands without `gateway/` (what it needs is handed in, typed by
`sms.ports`), and `shared/`, the floor under both, stands on nothing of ours.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "menus", "sms", "shared", "ledger", "ussdsim")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, known: dict[str, Path], typing_too: bool = False) -> Iterator[str]:
    """Project modules `node` imports at run time, and with `typing_too` also those only a type
    checker sees (under `if TYPE_CHECKING:`)."""
    if isinstance(node, ast.If) and _is_type_checking(node.test) and not typing_too:
        for branch in node.orelse:
            yield from _imported(branch, known)
        return
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name in known)
    elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
        if node.module in known:
            yield node.module
        submodules = (f"{node.module}.{a.name}" for a in node.names)
        yield from (name for name in submodules if name in known)
    for child in ast.iter_child_nodes(node):
        yield from _imported(child, known, typing_too)


@cache
def _graph(typing_too: bool = False) -> dict[str, frozenset[str]]:
    known = _modules()
    return {
        name: frozenset(_imported(ast.parse(path.read_text(encoding="utf-8")), known, typing_too))
        - {name}
        for name, path in known.items()
    }


def _edges(typing_too: bool = False) -> list[tuple[str, str]]:
    return [(src, dst) for src, deps in sorted(_graph(typing_too).items()) for dst in sorted(deps)]


def _in(module: str, *rooms: str) -> bool:
    return any(module == room or module.startswith(room + ".") for room in rooms)


def test_the_graph_sees_the_known_imports() -> None:
    # A reader that found nothing would pass every rule below.
    graph = _graph()
    assert "gateway.ussd.mmi" in graph["gateway.ussd.service"]
    assert "ledger.service" in graph["gateway.runtime"]
    assert len(graph) > 100


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_ledger_imports_only_itself() -> None:
    assert [(s, d) for s, d in _edges() if _in(s, "ledger") and not _in(d, "ledger")] == []


def test_menus_import_no_edge_and_only_the_alphabet_from_sms() -> None:
    # The USSD length limits are GSM 03.38 facts; sms.encoding is pure and owns them.
    outside = [(s, d) for s, d in _edges() if _in(s, "menus") and not _in(d, "menus")]
    assert [(s, d) for s, d in outside if d != "sms.encoding"] == []


def test_sms_never_reaches_into_the_http_or_ussd_rooms() -> None:
    assert [
        (s, d) for s, d in _edges() if _in(s, "sms") and _in(d, "gateway.http", "gateway.ussd")
    ] == []


def test_sms_imports_nothing_from_the_gateway_not_even_for_types() -> None:
    # The clock, events, metrics, faults, the directory and the abuse limits reach sms/ through
    # its constructors, typed by sms.ports; its config sections are its own (sms.config).
    assert [(s, d) for s, d in _edges(typing_too=True) if _in(s, "sms") and _in(d, "gateway")] == []


def test_every_sms_module_loads_without_the_gateway() -> None:
    # What the source says, checked where it counts: in a fresh interpreter, importing all of
    # sms/ brings in no module of gateway/ (nor does anything it imports).
    sms_modules = sorted(name for name in _modules() if _in(name, "sms"))
    probe = (
        "import importlib, sys\n"
        f"for name in {sms_modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'gateway' or m.startswith('gateway.')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert len(sms_modules) > 20
    assert loaded.stdout.strip() == "[]"


def test_the_shared_floor_stands_on_nothing_of_ours() -> None:
    outside = [(s, d) for s, d in _edges(typing_too=True) if _in(s, "shared")]
    assert [(s, d) for s, d in outside if not _in(d, "shared")] == []


def test_the_graph_sees_imports_made_for_types_only_when_asked() -> None:
    # The rules that count them would pass on a reader that skipped them.
    assert "gateway.http.endpoint" in _graph(typing_too=True)["gateway.http.openapi"]
    assert "gateway.http.endpoint" not in _graph()["gateway.http.openapi"]


@pytest.mark.parametrize(
    "room", ["gateway.harness", "gateway.actions", "gateway.ussd", "menus.action_specs"]
)
def test_the_harness_and_cores_of_the_gateway_do_not_import_the_http_edge(room: str) -> None:
    allowed = {"gateway.harness.scenario.own_server"}  # runs a private server for a scenario
    assert [
        (s, d) for s, d in _edges() if _in(s, room) and s not in allowed and _in(d, "gateway.http")
    ] == []


def test_ussdsim_speaks_http_and_the_command_line_only() -> None:
    # The public face lives in other people's suites, whose own `gateway` or `sms` package may
    # stand first on the path: an import from our rooms would load theirs.
    assert [
        (s, d)
        for s, d in _edges()
        if _in(s, "ussdsim") and _in(d, "gateway", "sms", "ledger", "menus", "shared")
    ] == []
    assert "ussdsim.client" in _graph()["ussdsim.server"]  # the rule reads ussdsim too


def test_every_package_says_what_lives_there() -> None:
    missing = [
        name
        for name, path in _modules().items()
        if path.name == "__init__.py" and ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert missing == []
