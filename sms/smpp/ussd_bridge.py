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

Every deliver_sm of a dialogue carries user_message_reference: the session number until the
client's own submit_sm gives one, then the client's, so it can match hops to its dialogues.
A screen that does not fit one USSD string (182 GSM-7 septets, 80 UCS-2 units) is refused with
ESME_RINVMSGLEN and ends the dialogue as an application error. The release at the end of a
dialogue the client did not end is written at once and its deliver_sm_resp awaited in the
background: a silent client must not hold up the subscriber's next screen.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ledger.numbers import InvalidNumber, normalize_msisdn
from sms.encoding import ussd_fits, ussd_measure
from sms.smpp.accounts import Account
from sms.smpp.coding import CodingError, data_coding_for, decode_text, encode_text
from sms.smpp.constants import Status, UssdServiceOp
from sms.smpp.pdu import Pdu, Tlv, make_pdu
from sms.smpp.server import Connection, ConnectionLost
from sms.smpp.session import LocalProtocolError
from sms.smpp.smsc import Smsc
from sms.smpp.submit_rules import address_of
from sms.smpp.ussd_relay import Hop, RelayedReply, Unreachable, UssdRelay

log = logging.getLogger("ussdsim.smpp")


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
    reference: int | None = None  # the client's user_message_reference, when it sent one


@dataclass(frozen=True)
class Dialogue:
    """Where one dialogue's hops go: the account, the subscriber, the service code dialled, and
    the numbers that name the dialogue to the client."""

    system_id: str
    msisdn: str
    service_code: str
    number: int
    reference: int


class SmppUssdBridge:
    """Matches the clients' USSD submit_sm to the dialogues waiting for them (one per
    subscriber and account: a subscriber has one USSD transaction at a time)."""

    def __init__(self, smsc: Smsc, region: str) -> None:
        self.smsc = smsc
        self._region = region
        self._waiting: dict[tuple[str, str], asyncio.Future[ClientReply]] = {}
        self._numbers = itertools.count(1)
        self._notices: set[asyncio.Task[None]] = set()
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
        umr = pdu.tlv("user_message_reference")
        reply = RelayedReply(text, end, umr if isinstance(umr, int) else None)
        if not ussd_fits(text):
            # Shown cut short it would read as a valid screen: the dialogue ends instead.
            m = ussd_measure(text)
            detail = f"a {m.encoding} screen of {m.used} over the USSD limit of {m.limit}"
            reply = RelayedReply(end=True, error=detail, reason="too_long")
        status = Status.ROK if reply.error is None else Status.RINVMSGLEN
        if future is not None and here:
            self._settle(future, reply)
            return status
        assert self.relay is not None
        if await self.relay.forward_screen(account.system_id, msisdn, reply):
            return status  # a sibling worker waits for this screen
        return Status.RSUBMITFAIL if reply.error is None else status

    @staticmethod
    def _settle(future: asyncio.Future[ClientReply], reply: RelayedReply) -> None:
        if reply.error is not None:
            future.set_exception(BridgeFailure(reply.reason, reply.error))
        else:
            future.set_result(ClientReply(reply.text, reply.end, reply.reference))

    def _on_relayed(self, system_id: str, msisdn: str, reply: RelayedReply) -> None:
        """A screen (or a failed deliver_sm) from the worker the client's link is on."""
        future = self._waiting.get((system_id, msisdn))
        if future is None or future.done():
            return
        self._settle(future, reply)

    async def exchange(self, dialogue: Dialogue, op: int, text: str, sequence: int) -> ClientReply:
        """Send the subscriber's hop to the client and wait for its screen (the gateway bounds
        the wait with the route's application timeout)."""
        key = (dialogue.system_id, dialogue.msisdn)
        previous = self._waiting.pop(key, None)
        if previous is not None and not previous.done():
            previous.cancel()
        future: asyncio.Future[ClientReply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self._deliver(self._hop(dialogue, op, text, sequence, end=False))
            return await future
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
                if self.relay is not None:
                    await self.relay.done(dialogue.system_id, dialogue.msisdn)

    async def release(self, dialogue: Dialogue, sequence: int) -> None:
        """Tell the client the dialogue is over: an empty USSR confirm with the end bit set,
        written now; its answer is awaited in the background (nobody bound: nobody to tell)."""
        hop = self._hop(dialogue, UssdServiceOp.USSR_CONFIRM, "", sequence, end=True)
        try:
            await self._deliver(hop, wait_for_answer=False)
        except BridgeFailure as e:
            log.info("release of a USSD dialogue with %s not sent: %s", dialogue.system_id, e)

    @staticmethod
    def _hop(dialogue: Dialogue, op: int, text: str, sequence: int, *, end: bool) -> Hop:
        info = session_info(dialogue.number, sequence, end)
        d = dialogue
        return Hop(d.system_id, d.msisdn, op, text, info, d.service_code, d.reference)

    async def _deliver(self, hop: Hop, *, wait_for_answer: bool = True) -> None:
        if self.relay is not None and not self._receivers(hop.account):
            waits = wait_for_answer and (hop.account, hop.msisdn) in self._waiting
            try:
                await self.relay.deliver(hop, waits=waits)
            except Unreachable:
                raise BridgeFailure(
                    "unreachable", f"no SMPP receiver of {hop.account} is bound"
                ) from None
            return
        await self._send_here(hop, wait_for_answer=wait_for_answer)

    def _receivers(self, system_id: str) -> list[Connection]:
        return [c for c in self.smsc.server.bound(system_id) if c.can_receive]

    async def _send_here(self, hop: Hop, *, wait_for_answer: bool = True) -> None:
        receivers = self._receivers(hop.account)
        if not receivers:
            raise BridgeFailure("unreachable", f"no SMPP receiver of {hop.account} is bound")
        coding = data_coding_for(hop.text)
        pdu = make_pdu(
            "deliver_sm",
            service_type="USSD",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=address_of(hop.msisdn),
            destination_addr=hop.service_code,
            data_coding=int(coding),
            short_message=encode_text(hop.text, coding),
            tlvs=[
                Tlv.of("ussd_service_op", hop.op),
                Tlv.of("its_session_info", hop.info),
                Tlv.of("user_message_reference", hop.reference),
            ],
        )
        try:
            answer = receivers[0].send_request(pdu)
        except (ConnectionLost, LocalProtocolError) as e:
            raise BridgeFailure("unreachable", f"deliver_sm to {hop.account} failed: {e}") from e
        if not wait_for_answer:
            task = asyncio.create_task(self._answered(hop.account, answer))
            self._notices.add(task)
            task.add_done_callback(self._notices.discard)
            return
        try:
            resp = await answer
        except (ConnectionLost, TimeoutError) as e:
            raise BridgeFailure("unreachable", f"deliver_sm to {hop.account} failed: {e}") from e
        if resp.status != Status.ROK:
            raise BridgeFailure(
                "unreachable", f"{hop.account} answered deliver_sm with {resp.status}"
            )

    @staticmethod
    async def _answered(system_id: str, answer: Coroutine[Any, Any, Pdu]) -> None:
        try:
            resp = await answer
        except (ConnectionLost, TimeoutError) as e:
            log.info("release of a USSD dialogue: no deliver_sm_resp from %s (%s)", system_id, e)
            return
        if resp.status != Status.ROK:
            log.info("release of a USSD dialogue: %s answered %s", system_id, resp.status)
