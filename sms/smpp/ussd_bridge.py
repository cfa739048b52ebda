"""A USSD application that is an SMPP client bound to our SMSC.

The subscriber dials -> deliver_sm (service_type "USSD") with the dialled string; the client
answers with submit_sm to the subscriber: a screen that waits for input, or the final screen.
The subscriber's input -> another deliver_sm, and a dialogue the client did not end (cancel,
timeout, redial) -> a release. Which ussd_service_op values and TLVs say all that is the
account's `ussd_variant` (`sms.smpp.ussd_variants`: SMPP 3.4's own by default, or a vendor's).

The deliver_sm goes straight to a bound receiver, not through the MO queue: a dialogue is live,
and a dial nobody can hear must fail now (the gateway then shows its error screen), not reach a
client minutes later. Under several workers a receiver bound to a sibling process is reached
through `sms.smpp.ussd_relay`.

A submit_sm the variant cannot read (an op it does not know, a TLV it needs missing) is answered
with the variant's error status and ends the dialogue as a malformed reply. A screen that does
not fit one USSD string (182 GSM-7 septets, 80 UCS-2 units) is refused with ESME_RINVMSGLEN and
ends the dialogue as an application error. The release at the end of a dialogue the client did
not end is written at once and its deliver_sm_resp awaited in the background: a silent client
must not hold up the subscriber's next screen.
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
from sms.smpp.ussd_variants import DEFAULT, VARIANTS
from sms.smpp.ussd_variants.base import Refused, Step, UssdVariant

log = logging.getLogger("ussdsim.smpp")


class BridgeFailure(Exception):
    """No usable screen from the client; `reason` is the word the USSD layer counts
    (`unreachable`, `malformed`, `too_long`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


def hop_pdu(hop: Hop) -> Pdu:
    """The deliver_sm of one hop: the subscriber to the service code, the TLVs its variant set."""
    coding = data_coding_for(hop.text)
    tlvs = (
        ("ussd_service_op", hop.op),
        ("its_session_info", hop.info),
        ("user_message_reference", hop.reference),
    )
    return make_pdu(
        "deliver_sm",
        service_type="USSD",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=address_of(hop.msisdn),
        destination_addr=hop.service_code,
        data_coding=int(coding),
        short_message=encode_text(hop.text, coding),
        tlvs=[Tlv.of(name, value) for name, value in tlvs if value is not None],
    )


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

    def _variant(self, system_id: str) -> UssdVariant:
        account = self.smsc.accounts.get(system_id)
        return VARIANTS[account.ussd_variant if account is not None else DEFAULT]

    def next_session_number(self, system_id: str = "") -> int:
        """The number of a new dialogue with the account's client, in its variant's range."""
        return self._variant(system_id).dialogue_number(next(self._numbers))

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
        reply, status = self._read_screen(account, pdu)
        if future is not None and here:
            self._settle(future, reply)
            return status
        assert self.relay is not None
        if await self.relay.forward_screen(account.system_id, msisdn, reply):
            return status  # a sibling worker waits for this screen
        return Status.RSUBMITFAIL if reply.error is None else status

    def _read_screen(self, account: Account, pdu: Pdu) -> tuple[RelayedReply, int]:
        """The client's screen as the waiting dialogue takes it (an error ends the dialogue),
        and the status its submit_sm gets."""
        reading = self._variant(account.system_id).read_submit(pdu, account.ussd_end)
        if isinstance(reading, Refused):
            failure = RelayedReply(end=True, error=reading.detail, reason="malformed")
            return failure, reading.status
        payload = pdu.tlv("message_payload")
        octets = payload if isinstance(payload, bytes) and payload else pdu["short_message"]
        try:
            text = decode_text(octets, int(pdu.fields.get("data_coding", 0)))
        except CodingError as e:
            failure = RelayedReply(end=True, error=f"undecodable text: {e}", reason="malformed")
            return failure, Status.RINVMSGLEN
        if not ussd_fits(text):
            # Shown cut short it would read as a valid screen: the dialogue ends instead.
            m = ussd_measure(text)
            detail = f"a {m.encoding} screen of {m.used} over the USSD limit of {m.limit}"
            return RelayedReply(end=True, error=detail, reason="too_long"), Status.RINVMSGLEN
        return RelayedReply(text, reading.end, reading.reference), Status.ROK

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
        step = Step.BEGIN if op == UssdServiceOp.PSSR_INDICATION else Step.CONTINUE
        try:
            await self._deliver(self._hop(dialogue, step, text, sequence))
            return await future
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
                if self.relay is not None:
                    await self.relay.done(dialogue.system_id, dialogue.msisdn)

    async def release(self, dialogue: Dialogue, sequence: int) -> None:
        """Tell the client the dialogue is over, as its variant does, written now; its answer
        is awaited in the background (nobody bound: nobody to tell)."""
        hop = self._hop(dialogue, Step.RELEASE, "", sequence)
        try:
            await self._deliver(hop, wait_for_answer=False)
        except BridgeFailure as e:
            log.info("release of a USSD dialogue with %s not sent: %s", dialogue.system_id, e)

    def _hop(self, dialogue: Dialogue, step: Step, text: str, sequence: int) -> Hop:
        d = dialogue
        wire = self._variant(d.system_id).deliver(step, d.number, d.reference, sequence)
        return Hop(d.system_id, d.msisdn, wire.op, text, wire.info, d.service_code, wire.reference)

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
        pdu = hop_pdu(hop)
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
