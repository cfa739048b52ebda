"""The menu engine: pure steps from (menu, state, answer or action result) to the next step.

A step is either a `Screen` to show or an `ActionRequest` the edge must run and answer with
`resume`. The state is plain data that round-trips through JSON, so any process holding the menu
can continue a session. The engine never mutates the state it is given.

Rules (SERVICES.md, "How every menu behaves"):
- a menu lists its visible options as `N Text`; hidden options answer but are not listed;
- `0` goes back one screen, `00` to the start screen, `99` to the next page of a long menu;
- arriving at a screen already on the way back (a "try again" option, a "main menu" one) cuts the
  way back to what it was there, so `0` never returns to a screen left behind by a loop;
- a wrong choice or an invalid input re-shows the screen with one error line first, and the third
  wrong answer in a row ends the session with an apology;
- pre-typed fields (`*111*828*1#`) are consumed one by one as answers to the screens reached, and a
  bad one behaves exactly as if typed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from menus.inputs import parse_input
from menus.render import LANGS, fit, paginate, render
from menus.schema import (
    MAX_INPUT,
    ActionScreen,
    EndScreen,
    InputScreen,
    LocalText,
    Menu,
    MenuScreen,
)

MAX_WRONG = 3
BACK, HOME, MORE = "0", "00", "99"

Phase = Literal["answer", "action", "ended"]
_PHASES: tuple[Phase, ...] = ("answer", "action", "ended")
JsonScalar = str | int | float | bool | None


class EngineError(ValueError):
    """A call that does not fit the session: wrong menu, wrong phase, unknown screen, bad value."""


@dataclass(frozen=True)
class SessionState:
    menu_id: str
    screen: str
    lang: str
    vars: dict[str, Any] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    errors: int = 0
    page: int = 0
    pending: tuple[str, ...] = ()
    phase: Phase = "answer"  # what the session waits for: an answer, an action result, nothing

    def to_json(self) -> dict[str, Any]:
        return {
            "menu_id": self.menu_id,
            "screen": self.screen,
            "lang": self.lang,
            "vars": dict(self.vars),
            "history": list(self.history),
            "errors": self.errors,
            "page": self.page,
            "pending": list(self.pending),
            "phase": self.phase,
        }

    @classmethod
    def from_json(cls, data: Any) -> SessionState:
        if not isinstance(data, Mapping):
            raise EngineError("session state must be a JSON object")
        try:
            state = cls(
                menu_id=_typed(data["menu_id"], str, "menu_id"),
                screen=_typed(data["screen"], str, "screen"),
                lang=_typed(data["lang"], str, "lang"),
                vars=_json_vars(_typed(data.get("vars", {}), dict, "vars")),
                history=tuple(_strings(data.get("history", []), "history")),
                errors=_typed(data.get("errors", 0), int, "errors"),
                page=_typed(data.get("page", 0), int, "page"),
                pending=tuple(_strings(data.get("pending", []), "pending")),
                phase=_phase(data.get("phase", "answer")),
            )
        except KeyError as exc:
            raise EngineError(f"session state lacks {exc.args[0]!r}") from None
        if state.lang not in LANGS:
            raise EngineError(f"unknown language {state.lang!r}")
        if state.errors < 0 or state.page < 0:
            raise EngineError("errors and page must not be negative")
        return state


_STATE_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(SessionState))


def _changed(state: SessionState, **changes: Any) -> SessionState:
    """`dataclasses.replace` for the state, without its walk over the fields on every call (a
    step makes several); a name that is not a field is refused as there."""
    unknown = changes.keys() - _STATE_FIELDS
    if unknown:
        raise TypeError(f"SessionState has no field {', '.join(sorted(unknown))}")
    changed = object.__new__(SessionState)
    changed.__dict__.update(state.__dict__, **changes)
    return changed


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EngineError(f"session state field {name!r} must be {kind.__name__}")
    return value


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EngineError(f"session state field {name!r} must be a list of strings")
    return value


def _phase(value: Any) -> Phase:
    for phase in _PHASES:
        if value == phase:
            return phase
    raise EngineError(f"unknown session phase {value!r}")


def _json_vars(values: Mapping[Any, Any]) -> dict[str, Any]:
    for name, value in values.items():
        if not isinstance(name, str):
            raise EngineError(f"variable name {name!r} is not a string")
        if not isinstance(value, JsonScalar):
            raise EngineError(f"variable {name!r} must be a string, number, boolean or null")
    return dict(values)


@dataclass(frozen=True)
class Screen:
    """Show `text` to the subscriber; `end` releases the session."""

    text: str
    end: bool
    state: SessionState


@dataclass(frozen=True)
class ActionRequest:
    """The edge runs this action and calls `resume` with its outcome."""

    name: str
    args: dict[str, Any]
    state: SessionState


Step = Screen | ActionRequest


def start(
    menu: Menu,
    *,
    lang: str,
    prefilled: Sequence[str] = (),
    vars: Mapping[str, Any] | None = None,
) -> Step:
    """Open a session on the menu's start screen, consuming pre-typed fields as answers."""
    if lang not in LANGS:
        raise EngineError(f"unknown language {lang!r} (expected one of {', '.join(LANGS)})")
    if isinstance(prefilled, str) or not all(isinstance(item, str) for item in prefilled):
        raise EngineError("prefilled must be a sequence of strings")
    state = SessionState(
        menu_id=menu.id,
        screen=menu.start,
        lang=lang,
        vars=_json_vars(vars or {}),
        # `*111*#` dials an empty field: nothing was typed there, so it answers nothing.
        pending=tuple(typed for typed in prefilled if typed.strip()),
    )
    return _arrive(menu, state)


def answer(menu: Menu, state: SessionState, text: str) -> Step:
    """The subscriber typed `text` on the screen the state shows."""
    _check(menu, state, "answer")
    if not isinstance(text, str):
        raise EngineError("an answer must be a string")
    return _handle(menu, _changed(state, pending=()), text)


def resume(
    menu: Menu, state: SessionState, outcome: str, values: Mapping[str, Any] | None = None
) -> Step:
    """The action the state waits for finished with `outcome`; `values` join the session vars."""
    _check(menu, state, "action")
    spec = menu.screens[state.screen]
    assert isinstance(spec, ActionScreen)  # the phase says so
    merged = {**state.vars, **_json_vars(values or {})}
    state = _changed(state, vars=merged)
    target = spec.on.get(outcome, spec.on.get("default"))
    if target is None or target not in menu.screens:
        return _end(state, menu.messages.failure)
    return _go(menu, state, target)


def _check(menu: Menu, state: SessionState, phase: Phase) -> None:
    if state.menu_id != menu.id:
        raise EngineError(f"state belongs to menu {state.menu_id!r}, not {menu.id!r}")
    if state.screen not in menu.screens:
        raise EngineError(f"menu {menu.id!r} has no screen {state.screen!r}")
    if state.lang not in LANGS:
        raise EngineError(f"unknown language {state.lang!r}")
    if state.phase != phase:
        waiting = {"answer": "an answer", "action": "an action result", "ended": "nothing"}
        raise EngineError(f"the session waits for {waiting[state.phase]}")


def _go(menu: Menu, state: SessionState, target: str) -> Step:
    """Move to target; menus and inputs are remembered so that `0` can return to them."""
    current = menu.screens.get(state.screen)
    history = state.history
    if isinstance(current, MenuScreen | InputScreen) and state.phase == "answer":
        history = (*history, state.screen)
    if target in history:
        history = history[: history.index(target)]
    moved = _changed(state, screen=target, history=history, errors=0, page=0)
    return _arrive(menu, moved)


def _arrive(menu: Menu, state: SessionState) -> Step:
    spec = menu.screens[state.screen]
    if isinstance(spec, ActionScreen):
        args = {name: _arg(value, state) for name, value in spec.args.items()}
        waiting = _changed(state, phase="action")
        return ActionRequest(spec.action, args, waiting)
    if isinstance(spec, EndScreen):
        return _end(state, spec.text)
    state = _changed(state, phase="answer")
    if state.pending:
        typed, *rest = state.pending
        return _handle(menu, _changed(state, pending=tuple(rest)), typed)
    return _show(menu, state, None)


def _arg(value: str | int | bool, state: SessionState) -> Any:
    """`"{amount_kop}"` passes the variable itself (keeping its type); other strings render."""
    if not isinstance(value, str):
        return value
    inner = value[1:-1]
    if value.startswith("{") and value.endswith("}") and inner.isidentifier():
        return state.vars.get(inner)
    return render(value, state.vars, state.lang)


def _handle(menu: Menu, state: SessionState, raw: str) -> Step:
    spec = menu.screens[state.screen]
    typed = raw.strip()
    if typed == HOME and len(raw) <= MAX_INPUT:
        home = _changed(state, screen=menu.start, history=(), errors=0, page=0)
        return _arrive(menu, home)
    if typed == BACK and len(raw) <= MAX_INPUT:
        if not state.history:
            return _show(menu, _changed(state, errors=0, page=0), None)
        *rest, previous = state.history
        back = _changed(state, screen=previous, history=tuple(rest), errors=0, page=0)
        return _arrive(menu, back)
    if isinstance(spec, MenuScreen):
        return _choose(menu, state, spec, raw)
    assert isinstance(spec, InputScreen)  # only menus and inputs take answers
    value = parse_input(spec, raw)
    if value is None:
        return _wrong(menu, state, spec.error or menu.messages.invalid_input)
    saved = _changed(state, vars={**state.vars, spec.save_as: value})
    return _go(menu, saved, spec.next)


def _choose(menu: Menu, state: SessionState, spec: MenuScreen, raw: str) -> Step:
    typed = raw.strip() if len(raw) <= MAX_INPUT else None
    # Paging neither answers nor errs, so it keeps the count of wrong answers (and the layout).
    if typed == MORE and state.page + 1 < len(_menu_pages(menu, state, spec)):
        return _show(menu, _changed(state, page=state.page + 1), None)
    for option in spec.options:
        if option.key == typed:
            chosen = state if option.lang is None else _changed(state, lang=option.lang)
            if option.assign:
                chosen = _changed(chosen, vars={**chosen.vars, **option.assign})
            return _go(menu, chosen, option.next)
    return _wrong(menu, state, menu.messages.invalid_choice)


def _wrong(menu: Menu, state: SessionState, error: LocalText) -> Step:
    errors = state.errors + 1
    state = _changed(state, errors=errors, page=0, pending=())
    if errors >= MAX_WRONG:
        return _end(state, menu.messages.apology)
    return _show(menu, state, error.get(state.lang))


def _end(state: SessionState, text: LocalText) -> Screen:
    ended = _changed(state, phase="ended", pending=())
    return Screen(fit(render(text.get(state.lang), state.vars, state.lang)), True, ended)


def _menu_pages(menu: Menu, state: SessionState, spec: MenuScreen) -> list[str]:
    """Pages as shown now: after a wrong choice the first page starts with the error line."""
    error = menu.messages.invalid_choice.get(state.lang) if state.errors else None
    return menu_pages(menu, spec, state.vars, state.lang, error)


def menu_lines(
    spec: MenuScreen, values: Mapping[str, Any], lang: str, error: str | None
) -> list[str]:
    """A menu screen's lines: error line, text, then one `N Text` line per visible option."""
    lines = [] if error is None else [error]
    lines += render(spec.text.get(lang), values, lang).split("\n")
    for option in spec.options:
        if not option.hidden and option.text is not None:
            lines.append(f"{option.key} {render(option.text.get(lang), values, lang)}")
    return lines


def menu_pages(
    menu: Menu, spec: MenuScreen, values: Mapping[str, Any], lang: str, error: str | None
) -> list[str]:
    lines = menu_lines(spec, values, lang, error)
    return paginate(lines, menu.messages.more.get(lang)).pages


def input_text(spec: InputScreen, values: Mapping[str, Any], lang: str, error: str | None) -> str:
    body = render(spec.text.get(lang), values, lang)
    return body if error is None else f"{error}\n{body}"


def _show(menu: Menu, state: SessionState, input_error: str | None) -> Screen:
    spec = menu.screens[state.screen]
    if isinstance(spec, MenuScreen):
        pages = _menu_pages(menu, state, spec)
        page = min(state.page, len(pages) - 1)
        return Screen(pages[page], False, _changed(state, page=page))
    assert isinstance(spec, InputScreen)
    return Screen(fit(input_text(spec, state.vars, state.lang, input_error)), False, state)
