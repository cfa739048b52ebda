"""Whole-menu checks on a schema-valid `Menu`: graph, actions, templates and USSD lengths.

Each check yields (screen, reason) pairs; the loader adds the file name. A menu that passes can be
served: every target exists, every screen is reachable, every action outcome leads somewhere, every
template names a known variable, and every text fits the USSD limit when rendered with the longest
values its variables can take (a long menu may instead fit page by page).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from menus.action_specs.catalogue import ACTIONS, SERVICES, ActionSpec
from menus.engine import input_text, menu_lines
from menus.render import LANGS, TemplateError, paginate, render, template_fields
from menus.schema import (
    ActionScreen,
    EndScreen,
    InputScreen,
    LocalText,
    Menu,
    MenuScreen,
    ScreenSpec,
    VarSpec,
)
from sms.encoding import ussd_measure

Finding = tuple[str | None, str]


def check_menu(menu: Menu, actions: Mapping[str, ActionSpec] = ACTIONS) -> list[Finding]:
    findings = list(_graph(menu))
    findings += _actions(menu, actions)
    known = known_vars(menu, actions)
    template_findings = list(_templates(menu, known))
    findings += template_findings
    if not template_findings:  # lengths mean little while a template is broken
        findings += _lengths(menu, known)
    return findings


def targets(screen: ScreenSpec) -> list[str]:
    if isinstance(screen, MenuScreen):
        return [option.next for option in screen.options]
    if isinstance(screen, InputScreen):
        return [screen.next]
    if isinstance(screen, ActionScreen):
        return list(screen.on.values())
    return []


def _graph(menu: Menu) -> Iterator[Finding]:
    if menu.start not in menu.screens:
        yield None, f"start screen {menu.start!r} does not exist"
    for name, screen in menu.screens.items():
        for target in targets(screen):
            if target not in menu.screens:
                yield name, f"target {target!r} does not exist"
        if isinstance(screen, MenuScreen):
            seen: set[str] = set()
            for option in screen.options:
                if option.key in seen:
                    yield name, f"option key {option.key!r} is used twice"
                seen.add(option.key)
    reached = _reachable(menu)
    if menu.start in menu.screens:
        for name in menu.screens:
            if name not in reached:
                yield name, f"unreachable from start screen {menu.start!r}"


def _reachable(menu: Menu) -> set[str]:
    reached: set[str] = set()
    todo = [menu.start] if menu.start in menu.screens else []
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo += [target for target in targets(menu.screens[name]) if target in menu.screens]
    return reached


def _actions(menu: Menu, actions: Mapping[str, ActionSpec]) -> Iterator[Finding]:
    for name, screen in menu.screens.items():
        if not isinstance(screen, ActionScreen):
            continue
        spec = actions.get(screen.action)
        if spec is None:
            yield name, f"unknown action {screen.action!r} (known: {', '.join(sorted(actions))})"
            continue
        for arg in spec.args:
            if arg not in screen.args:
                yield name, f"action {spec.name!r} needs argument {arg!r}"
        for arg, value in screen.args.items():
            kind = spec.args.get(arg)
            if kind is None:
                yield name, f"action {spec.name!r} takes no argument {arg!r}"
            elif _is_literal(value) and kind == "service" and value not in SERVICES:
                known_services = ", ".join(sorted(SERVICES))
                yield name, f"unknown service {value!r} (known: {known_services})"
        for outcome in screen.on:
            if outcome != "default" and outcome not in spec.outcomes:
                yield name, f"action {spec.name!r} has no outcome {outcome!r}"
        if "default" not in screen.on:
            missing = sorted(spec.outcomes - set(screen.on))
            if missing:
                yield name, f"outcomes not handled and no default: {', '.join(missing)}"


def _is_literal(value: object) -> bool:
    """A string argument without a placeholder (templates are checked with the other texts)."""
    return isinstance(value, str) and "{" not in value


def known_vars(menu: Menu, actions: Mapping[str, ActionSpec] = ACTIONS) -> dict[str, list[VarSpec]]:
    """Every variable a text may name, with each way it can get its value."""
    known: dict[str, list[VarSpec]] = {name: [spec] for name, spec in menu.vars.items()}
    for screen in menu.screens.values():
        if isinstance(screen, InputScreen):
            known.setdefault(screen.save_as, []).append(screen.saved_var())
        elif isinstance(screen, ActionScreen) and screen.action in actions:
            for name, spec in actions[screen.action].values.items():
                known.setdefault(name, []).append(spec)
        elif isinstance(screen, MenuScreen):
            for option in screen.options:
                for name, value in option.assign.items():
                    known.setdefault(name, []).append(_assigned_var(value))
    return known


def _assigned_var(value: str | int) -> VarSpec:
    if isinstance(value, int):
        return VarSpec(kind="digits", max_len=len(str(value)))
    return VarSpec(kind="text", max_len=max(1, len(value)))


def _texts(menu: Menu, screen: ScreenSpec) -> Iterator[tuple[str, LocalText]]:
    if isinstance(screen, MenuScreen | InputScreen | EndScreen):
        yield "text", screen.text
    if isinstance(screen, MenuScreen):
        for option in screen.options:
            if option.text is not None:
                yield f"option {option.key}", option.text
    if isinstance(screen, InputScreen) and screen.error is not None:
        yield "error", screen.error


def _templates(menu: Menu, known: Mapping[str, list[VarSpec]]) -> Iterator[Finding]:
    for name, screen in menu.screens.items():
        sources = [
            (f"{where} ({lang})", text.get(lang))
            for where, text in _texts(menu, screen)
            for lang in LANGS
        ]
        if isinstance(screen, ActionScreen):
            sources += [
                (f"argument {arg}", value)
                for arg, value in screen.args.items()
                if isinstance(value, str)
            ]
        for where, template in sources:
            yield from ((name, reason) for reason in _template_problems(where, template, known))
    for field_name in type(menu.messages).model_fields:
        text: LocalText = getattr(menu.messages, field_name)
        for lang in LANGS:
            where = f"message {field_name} ({lang})"
            problems = _template_problems(where, text.get(lang), known)
            yield from ((None, reason) for reason in problems)


def _template_problems(
    where: str, template: str, known: Mapping[str, list[VarSpec]]
) -> Iterator[str]:
    try:
        fields = template_fields(template)
    except TemplateError as exc:
        yield f"{where}: {exc}"
        return
    for template_field in fields:
        if template_field.name not in known:
            yield f"{where}: unknown variable {template_field.name!r}"


def sample_sets(known: Mapping[str, list[VarSpec]]) -> list[dict[str, Any]]:
    """Value sets to render with: for each n, every variable takes its n-th longest candidate."""
    candidates = {
        name: [sample for spec in specs for sample in spec.samples()]
        for name, specs in known.items()
    }
    widest = max((len(values) for values in candidates.values()), default=1)
    return [
        {name: values[min(i, len(values) - 1)] for name, values in candidates.items()}
        for i in range(widest)
    ]


def _over(text: str) -> str | None:
    measure = ussd_measure(text)
    if measure.fits:
        return None
    return f"{measure.used} {measure.encoding} characters, limit {measure.limit}"


def _lengths(menu: Menu, known: Mapping[str, list[VarSpec]]) -> Iterator[Finding]:
    reported: set[tuple[str | None, str]] = set()
    for values, lang in itertools.product(sample_sets(known), LANGS):
        for finding in _lengths_with(menu, values, lang):
            if finding not in reported:
                reported.add(finding)
                yield finding


def _lengths_with(menu: Menu, values: Mapping[str, Any], lang: str) -> Iterator[Finding]:
    messages = menu.messages
    for field_name in ("apology", "failure", "invalid_choice", "invalid_input"):
        text: LocalText = getattr(messages, field_name)
        over = _over(render(text.get(lang), values, lang))
        if over:
            yield None, f"message {field_name} ({lang}) too long: {over}"
    more = messages.more.get(lang)
    if _over(f"x\n{more}"):
        yield None, f"message more ({lang}) leaves no room on a page"
    for name, screen in menu.screens.items():
        if isinstance(screen, MenuScreen):
            for error in (None, messages.invalid_choice.get(lang)):
                lines = menu_lines(screen, values, lang, error)
                if paginate(lines, more).cut:
                    unfit = next((line for line in lines if _over(f"{line}\n{more}")), "")
                    yield name, f"({lang}) a line is too long for a page: {unfit[:40]!r}"
                    break
        elif isinstance(screen, InputScreen):
            error = (screen.error or messages.invalid_input).get(lang)
            over = _over(input_text(screen, values, lang, error))
            if over:
                yield name, f"text with error line ({lang}) too long: {over}"
        elif isinstance(screen, EndScreen):
            over = _over(render(screen.text.get(lang), values, lang))
            if over:
                yield name, f"text ({lang}) too long: {over}"
