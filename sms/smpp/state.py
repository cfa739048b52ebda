"""SMPP 3.4 bind states of one SMSC-side connection, as tables.

Rules (everything the session enforces is in this file):

1. A connection starts OPEN. Before a bind succeeds the ESME may send only a bind, enquire_link
   or generic_nack; anything else is answered RINVBNDSTS (generic_nack if it has no _resp).
2. bind_transmitter -> BOUND_TX, bind_receiver -> BOUND_RX, bind_transceiver -> BOUND_TRX, only
   when authentication answers ROK; a refused bind leaves the connection OPEN (the ESME may retry).
3. A bind while bound (or unbinding) is answered RALYBND and changes nothing.
4. The ESME submits (submit_sm, submit_multi, data_sm, query_sm, cancel_sm, replace_sm) only as
   a transmitter or transceiver; as a receiver that is RINVBNDSTS.
5. The SMSC delivers (deliver_sm, data_sm, alert_notification) only to a receiver or transceiver,
   so deliver_sm_resp / data_sm_resp are accepted only there (and while unbinding).
6. enquire_link is accepted in every state but CLOSED; unbind is answered in every state but
   CLOSED (RINVBNDSTS while OPEN, because nothing is bound).
7. The ESME's unbind closes the connection once unbind_resp is sent. The SMSC's unbind moves to
   UNBOUND; the ESME's unbind_resp (or its own unbind) then closes it.
8. CLOSED accepts nothing; a broken stream (impossible command_length) goes straight to CLOSED.

```
            bind ok                 SMSC unbind               unbind_resp / unbind
  OPEN ─────────────► BOUND_TX ─────────────────► UNBOUND ───────────────────────► CLOSED
   │                  BOUND_RX                                                      ▲
   │                  BOUND_TRX ──────────────── ESME unbind ───────────────────────┤
   └──────────────────────────── framing error / connection lost ───────────────────┘
```
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from sms.smpp.constants import Status


class BindState(StrEnum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


BOUND_STATES = frozenset({BindState.BOUND_TX, BindState.BOUND_RX, BindState.BOUND_TRX})

BIND_COMMANDS: Mapping[str, BindState] = MappingProxyType(
    {
        "bind_transmitter": BindState.BOUND_TX,
        "bind_receiver": BindState.BOUND_RX,
        "bind_transceiver": BindState.BOUND_TRX,
    }
)

BIND_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "bind_transmitter": "transmitter",
        "bind_receiver": "receiver",
        "bind_transceiver": "transceiver",
    }
)

ESME_OPERATIONS = frozenset(
    {"submit_sm", "submit_multi", "data_sm", "query_sm", "cancel_sm", "replace_sm"}
)
SMSC_OPERATIONS = frozenset({"deliver_sm", "data_sm", "alert_notification"})
# The response that answers each ESME operation.
RESPONSE_TO: Mapping[str, str] = MappingProxyType({c: f"{c}_resp" for c in ESME_OPERATIONS})
SMSC_OPERATION_RESPONSES = frozenset({"deliver_sm_resp", "data_sm_resp"})

_LINK = frozenset({"enquire_link", "enquire_link_resp", "generic_nack"})
_UNBIND = frozenset({"unbind", "unbind_resp"})

# What the ESME may send in each state (rules 1, 4, 5, 6, 8).
ESME_MAY_SEND: Mapping[BindState, frozenset[str]] = MappingProxyType(
    {
        BindState.OPEN: frozenset({*BIND_COMMANDS, "enquire_link", "generic_nack"}),
        BindState.BOUND_TX: _LINK | _UNBIND | ESME_OPERATIONS,
        BindState.BOUND_RX: _LINK | _UNBIND | SMSC_OPERATION_RESPONSES,
        BindState.BOUND_TRX: _LINK | _UNBIND | ESME_OPERATIONS | SMSC_OPERATION_RESPONSES,
        BindState.UNBOUND: _LINK | _UNBIND | SMSC_OPERATION_RESPONSES,
        BindState.CLOSED: frozenset(),
    }
)

# Which requests the SMSC may originate in each state (rule 5); responses and generic_nack are
# governed by what the ESME asked, not by the state.
SMSC_MAY_REQUEST: Mapping[BindState, frozenset[str]] = MappingProxyType(
    {
        BindState.OPEN: frozenset({"enquire_link"}),
        BindState.BOUND_TX: frozenset({"enquire_link", "unbind"}),
        BindState.BOUND_RX: frozenset({"enquire_link", "unbind"}) | SMSC_OPERATIONS,
        BindState.BOUND_TRX: frozenset({"enquire_link", "unbind"}) | SMSC_OPERATIONS,
        BindState.UNBOUND: frozenset({"enquire_link"}),
        BindState.CLOSED: frozenset(),
    }
)

# State changes; bind success is rule 2 (BIND_COMMANDS) and is applied only on ROK.
AFTER_ESME: Mapping[tuple[BindState, str], BindState] = MappingProxyType(
    {
        **{(s, "unbind"): BindState.CLOSED for s in (*BOUND_STATES, BindState.UNBOUND)},
        (BindState.UNBOUND, "unbind_resp"): BindState.CLOSED,
    }
)
AFTER_SMSC: Mapping[tuple[BindState, str], BindState] = MappingProxyType(
    {(s, "unbind"): BindState.UNBOUND for s in BOUND_STATES}
)


def refusal(state: BindState, command: str) -> Status | None:
    """None if the ESME may send `command` now, else the command_status to answer it with."""
    if command in ESME_MAY_SEND[state]:
        return None
    if command in BIND_COMMANDS and state is not BindState.OPEN:
        return Status.RALYBND
    return Status.RINVBNDSTS


def after_esme(state: BindState, command: str) -> BindState:
    return AFTER_ESME.get((state, command), state)


def after_smsc(state: BindState, command: str) -> BindState:
    return AFTER_SMSC.get((state, command), state)
