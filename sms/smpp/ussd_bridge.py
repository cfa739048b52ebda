"""A USSD application that is an SMPP client bound to our SMSC.

The subscriber dials -> deliver_sm (service_type "USSD", ussd_service_op 1 PSSR indication,
its_session_info); the client answers with submit_sm to the subscriber: op 2 (USSR request)
shows a screen and waits for input, op 17 (PSSR response) is the final screen. Clients that end a
dialogue with the its_session_info end bit instead are configured per account
(`ussd_end: session_info`). The subscriber's input -> deliver_sm op 18 (USSR confirm).

its_session_info (2 octets): the session number in the first, then the sequence in bits 7-1 and
the end-of-session flag in bit 0 of the second. Every hop advances the sequence.

The deliver_sm goes straight to a bound receiver, not through the MO queue: a dialogue is live,
and a dial nobody can hear must fail now (the gateway then shows its error screen), not reach a
client minutes later. Under several workers a receiver bound to a sibling process is reached
through `sms.smpp.ussd_relay`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass

from ledger.numbers import InvalidNumber, normalize_msisdn
from sms.smpp.accounts import Account
from sms.smpp.coding import CodingError, data_coding_for, decode_text, encode_text
from sms.smpp.constants import Status, UssdServiceOp
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.server import Connection, ConnectionLost
from sms.smpp.session import LocalProtocolError
from sms.smpp.smsc import Smsc
from sms.smpp.submit_rules import address_of
from sms.smpp.ussd_relay import Hop, Unreachable, UssdRelay


class BridgeFailure(Exception):
    """No usable screen from the client; `reason` is the word the USSD layer counts
    (`unreachable`, `too_long`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


END_BIT = 0x01


def session_info(number: int, sequence: int, end: bool) -> int:
    return ((number & 0xFF) << 8) | ((sequence & 0x7F) << 1) | (END_BIT if end else 0)


@dataclass(frozen=True)
class ClientReply:
    text: str
    end: bool


class SmppUssdBridge:
    """Matches the clients' USSD submit_sm to the dialogues waiting for them (one per
    subscriber and account: a subscriber has one USSD transaction at a time)."""

    def __init__(self, smsc: Smsc, region: str) -> None:
        self.smsc = smsc
        self._region = region
        self._waiting: dict[tuple[str, str], asyncio.Future[ClientReply]] = {}
        self._numbers = itertools.count(1)
        smsc.ussd_handler = self.on_submit
        self.relay: UssdRelay | None = None
        if smsc.shared:
            self.relay = UssdRelay(
                smsc.store.redis,
                f"{smsc.store.owner or 'w'}-{secrets.token_hex(4)}",
                send_here=self._send_here,
                on_reply=self._on_relayed,
                has_receiver=lambda system_id: bool(self._receivers(system_id)),
            )
            smsc.companions.append(self.relay)

    def next_session_number(self) -> int:
        return next(self._numbers) % 256

    async def on_submit(self, account: Account, pdu: Pdu, now: float) -> int:
        """A USSD submit_sm from a client: ROK if it continues or ends a waiting dialogue."""
        try:
            msisdn = normalize_msisdn(str(pdu.fields.get("destination_addr", "")), self._region)
        except InvalidNumber:
            return Status.RINVDSTADR
        future = self._waiting.get((account.system_id, msisdn))
        here = future is not None and not future.done()
        if not here and self.relay is None:
            return Status.RSUBMITFAIL  # no dialogue with this subscriber is waiting for a screen
        op = pdu.tlv("ussd_service_op")
        info = pdu.tlv("its_session_info")
        if account.ussd_end == "session_info":
            if not isinstance(info, int):
                return Status.RMISSINGOPTPARAM
            end = bool(info & END_BIT)
        elif op == UssdServiceOp.PSSR_RESPONSE or op == UssdServiceOp.USSN_REQUEST:
            end = True
        elif op == UssdServiceOp.USSR_REQUEST:
            end = False
        else:
            return Status.RINVOPTPARAMVAL
        payload = pdu.tlv("message_payload")
        octets = payload if isinstance(payload, bytes) and payload else pdu["short_message"]
        try:
            text = decode_text(octets, int(pdu.fields.get("data_coding", 0)))
        except CodingError:
            return Status.RINVMSGLEN
        if future is not None and here:
            future.set_result(ClientReply(text, end))
            return Status.ROK
        assert self.relay is not None
        if await self.relay.forward_screen(account.system_id, msisdn, text, end):
            return Status.ROK  # a sibling worker waits for this screen
        return Status.RSUBMITFAIL

    def _on_relayed(
        self, system_id: str, msisdn: str, text: str, end: bool, error: str | None
    ) -> None:
        """A screen (or a failed deliver_sm) from the worker the client's link is on."""
        future = self._waiting.get((system_id, msisdn))
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(BridgeFailure("unreachable", error))
        else:
            future.set_result(ClientReply(text, end))

    async def exchange(
        self, system_id: str, msisdn: str, op: int, text: str, info: int, service_code: str
    ) -> ClientReply:
        """Send the subscriber's hop to the client and wait for its screen (the gateway bounds
        the wait with the route's application timeout)."""
        key = (system_id, msisdn)
        previous = self._waiting.pop(key, None)
        if previous is not None and not previous.done():
            previous.cancel()
        future: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self.deliver(system_id, msisdn, op, text, info, service_code)
            return await future
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
                if self.relay is not None:
                    await self.relay.done(system_id, msisdn)

    async def deliver(
        self, system_id: str, msisdn: str, op: int, text: str, info: int, service_code: str
    ) -> None:
        hop = Hop(system_id, msisdn, op, text, info, service_code)
        if self.relay is not None and not self._receivers(system_id):
            waits = (system_id, msisdn) in self._waiting
            try:
                await self.relay.deliver(hop, waits=waits)
            except Unreachable:
                raise BridgeFailure(
                    "unreachable", f"no SMPP receiver of {system_id} is bound"
                ) from None
            return
        await self._send_here(hop)

    def _receivers(self, system_id: str) -> list[Connection]:
        return [c for c in self.smsc.server.bound(system_id) if c.can_receive]

    async def _send_here(self, hop: Hop) -> None:
        system_id, msisdn, text = hop.account, hop.msisdn, hop.text
        op, info, service_code = hop.op, hop.info, hop.service_code
        receivers = self._receivers(system_id)
        if not receivers:
            raise BridgeFailure("unreachable", f"no SMPP receiver of {system_id} is bound")
        coding = data_coding_for(text)
        pdu = make_pdu(
            "deliver_sm",
            service_type="USSD",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=address_of(msisdn),
            destination_addr=service_code,
            data_coding=int(coding),
            short_message=encode_text(text, coding),
            tlvs=[Tlv.of("ussd_service_op", op), Tlv.of("its_session_info", info)],
        )
        try:
            resp = await receivers[0].request(pdu)
        except (ConnectionLost, LocalProtocolError, TimeoutError) as e:
            raise BridgeFailure("unreachable", f"deliver_sm to {system_id} failed: {e}") from e
        if resp.status != Status.ROK:
            raise BridgeFailure(
                "unreachable", f"{system_id} answered deliver_sm with {resp.status}"
            )
