"""The USSD application behind a route with `smpp: SYSTEM_ID`: an SMPP client bound to our
SMSC, reached through `sms.smpp.ussd_bridge` (which says how a dialogue maps onto deliver_sm and
submit_sm)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.config import Route, UssdConfig
from gateway.ussd.apps.base import AppContext, AppFailure, AppReply
from gateway.ussd.mmi import Ussd
from sms.smpp.constants import UssdServiceOp
from sms.smpp.ussd_bridge import BridgeFailure, SmppUssdBridge, session_info


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

    @property
    def timeout_s(self) -> float | None:
        return self._timeout_s

    @staticmethod
    def _service_code(route: str) -> str:
        return route.strip("*#").split("*")[0]

    async def begin(self, ctx: AppContext, dialled: Ussd) -> AppReply:
        number = self._bridge.next_session_number()
        async with _as_app_failure():
            reply = await self._bridge.exchange(
                self._system_id,
                ctx.msisdn,
                UssdServiceOp.PSSR_INDICATION,
                dialled.text,
                session_info(number, 0, False),
                self._service_code(ctx.route),
            )
        return AppReply(reply.text, reply.end, {"session": number, "seq": 1})

    async def answer(self, ctx: AppContext, state: dict[str, Any], text: str) -> AppReply:
        number, seq = int(state.get("session", 0)), int(state.get("seq", 1))
        async with _as_app_failure():
            reply = await self._bridge.exchange(
                self._system_id,
                ctx.msisdn,
                UssdServiceOp.USSR_CONFIRM,
                text,
                session_info(number, seq, False),
                self._service_code(ctx.route),
            )
        return AppReply(reply.text, reply.end, {"session": number, "seq": seq + 1})

    async def release(self, ctx: AppContext, state: dict[str, Any], cause: str) -> None:
        """Tell the client the dialogue is over: an empty USSR confirm with the end bit set."""
        number, seq = int(state.get("session", 0)), int(state.get("seq", 1))
        with contextlib.suppress(BridgeFailure):  # nobody bound: nobody to tell
            await self._bridge.deliver(
                self._system_id,
                ctx.msisdn,
                UssdServiceOp.USSR_CONFIRM,
                "",
                session_info(number, seq, True),
                self._service_code(ctx.route),
            )


def smpp_app_factory(bridge: SmppUssdBridge, ussd: UssdConfig) -> Callable[[Route], SmppApp]:
    """What the app registry calls for each route with `smpp: SYSTEM_ID`."""

    def build(route: Route) -> SmppApp:
        assert route.smpp is not None
        return SmppApp(bridge, route.smpp, route.timeout_s or ussd.app_timeout_s)

    return build
