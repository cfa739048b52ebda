"""The USSD application behind a route with `smpp: SYSTEM_ID`: an SMPP client bound to our
SMSC, reached through `sms.smpp.ussd_bridge` (which says how a dialogue maps onto deliver_sm and
submit_sm)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.config import Route, UssdConfig
from gateway.ussd.apps.base import AppContext, AppFailure, AppReply
from gateway.ussd.mmi import Ussd
from sms.smpp.constants import UssdServiceOp
from sms.smpp.ussd_bridge import BridgeFailure, ClientReply, Dialogue, SmppUssdBridge

MAX_UNANSWERED = 10_000


@contextlib.asynccontextmanager
async def _as_app_failure() -> AsyncIterator[None]:
    try:
        yield
    except BridgeFailure as e:
        raise AppFailure(e.reason, e.detail) from e


class SmppApp:
    """The UssdApp behind a route with `smpp: SYSTEM_ID`."""

    def __init__(self, bridge: SmppUssdBridge, system_id: str, timeout_s: float) -> None:
        self._bridge = bridge
        self._system_id = system_id
        self._timeout_s = timeout_s
        # Dialogues whose first screen never came: their release must still name them.
        self._unanswered: OrderedDict[str, Dialogue] = OrderedDict()

    @property
    def timeout_s(self) -> float | None:
        return self._timeout_s

    @staticmethod
    def _service_code(route: str) -> str:
        return route.strip("*#").split("*")[0]

    def _dialogue(self, ctx: AppContext, number: int, reference: int) -> Dialogue:
        service_code = self._service_code(ctx.route)
        return Dialogue(self._system_id, ctx.msisdn, service_code, number, reference)

    def _of_state(self, ctx: AppContext, state: dict[str, Any]) -> Dialogue:
        number = int(state.get("session", 0))
        return self._dialogue(ctx, number, int(state.get("umr", number)))

    @staticmethod
    def _state(dialogue: Dialogue, reply: ClientReply, seq: int) -> dict[str, Any]:
        umr = dialogue.reference if reply.reference is None else reply.reference
        return {"session": dialogue.number, "seq": seq, "umr": umr}

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        number = self._bridge.next_session_number(self._system_id)
        dialogue = self._dialogue(ctx, number, number)
        self._unanswered[ctx.session_id] = dialogue
        while len(self._unanswered) > MAX_UNANSWERED:
            self._unanswered.popitem(last=False)
        async with _as_app_failure():
            reply = await self._bridge.exchange(
                dialogue, UssdServiceOp.PSSR_INDICATION, dialled.text, 0
            )
        self._unanswered.pop(ctx.session_id, None)
        return AppReply(reply.text, reply.end, self._state(dialogue, reply, 1))

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        dialogue, seq = self._of_state(ctx, state), int(state.get("seq", 1))
        async with _as_app_failure():
            reply = await self._bridge.exchange(dialogue, UssdServiceOp.USSR_CONFIRM, text, seq)
        return AppReply(reply.text, reply.end, self._state(dialogue, reply, seq + 1))

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        """Tell the client the dialogue is over (see `SmppUssdBridge.release`)."""
        unanswered = self._unanswered.pop(ctx.session_id, None)
        if "session" in state:
            dialogue, seq = self._of_state(ctx, state), int(state.get("seq", 1))
        elif unanswered is not None:
            dialogue, seq = unanswered, 1
        else:
            return  # the dialogue never reached the client
        await self._bridge.release(dialogue, seq)


def smpp_app_factory(bridge: SmppUssdBridge, ussd: UssdConfig) -> Callable[[Route], SmppApp]:
    """What the app registry calls for each route with `smpp: SYSTEM_ID`."""

    def build(route: Route) -> SmppApp:
        assert route.smpp is not None
        return SmppApp(bridge, route.smpp, route.timeout_s or ussd.app_timeout_s)

    return build
