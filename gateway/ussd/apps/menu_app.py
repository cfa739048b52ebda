"""The built-in menus as a USSD application: the menu engine plus the actions it asks for."""

from __future__ import annotations

from typing import Any

from gateway.actions.registry import Actions
from gateway.actions.types import ActionContext
from gateway.harness.events import EventLog
from gateway.ussd.apps.base import AppContext, AppReply
from gateway.ussd.mmi import Ussd
from menus import engine
from menus.loader import MenuSet
from menus.schema import Menu
from shared.errors import ApiError

# A menu that keeps asking for actions without ever showing a screen is a broken menu, not a loop
# to follow forever.
MAX_ACTIONS_PER_STEP = 16


class MenuLibrary:
    """The menus currently loaded; replaced as a whole so every route sees one consistent set."""

    def __init__(self, menus: MenuSet) -> None:
        self.current = menus


class MenuApp:
    timeout_s: float | None = None  # runs inside the gateway: the store's own limits apply

    def __init__(
        self, menu_id: str, library: MenuLibrary, actions: Actions, events: EventLog
    ) -> None:
        self.menu_id = menu_id
        self._library = library
        self._actions = actions
        self._events = events

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        menu = self._library.current.get(self.menu_id)
        step = engine.start(menu, lang=ctx.lang, prefilled=dialled.fields)
        screen = await self._run_actions(
            menu, step, ActionContext(ctx.msisdn, ctx.now, "ussd", ctx.lang)
        )
        return AppReply(screen.text, screen.end, screen.state.to_json(), screen.state.lang)

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        session_state = engine.SessionState.from_json(state)
        menu = self._library.current.get(self.menu_id)
        step = engine.answer(menu, session_state, text)
        action_ctx = ActionContext(ctx.msisdn, ctx.now, "ussd", session_state.lang)
        screen = await self._run_actions(menu, step, action_ctx)
        return AppReply(screen.text, screen.end, screen.state.to_json(), screen.state.lang)

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        """Nothing to tell: a menu keeps no state outside the session."""

    async def _run_actions(
        self, menu: Menu, step: engine.Step, ctx: ActionContext
    ) -> engine.Screen:
        for _ in range(MAX_ACTIONS_PER_STEP):
            if isinstance(step, engine.Screen):
                return step
            outcome, values = await self._actions.run(step.name, step.args, ctx)
            await self._events.emit(
                "ussd.action", ctx.msisdn, ctx.now, action=step.name, outcome=outcome
            )
            step = engine.resume(menu, step.state, outcome, values)
        if isinstance(step, engine.Screen):
            return step
        raise ApiError(500, "menu_loop", "the menu asked for too many actions in one step")
