"""SMPP 3.4: the sans-IO parts, then the SMSC built on them, one module per flow.

Sans-IO (pure, unit-tested): `pdu`, `codec`, `compiled` (PDU bytes), `session` and `state` (the
session rules), `constants`, `coding` (data_coding), `udh`, `receipts` (receipt text),
`submit_rules` (what a submit/query/cancel must satisfy), `queue_items` (deliver_sm queue items
and their PDUs), `accounts`, `throttle`, `ussd_variants` (the USSD-over-SMPP conventions, one
module each), `schedule` (SMPP times and the delivery window), `malformed` (the malformed fault
persona's PDUs).

With I/O: `server` (the asyncio listener and connections), `smsc` (the application that wires
the flows), `binds` (who may bind, over every worker), `mt` (submit_sm/data_sm into the inbox,
query_sm, cancel_sm, replace_sm), `scheduled` and `scheduled_store` (MT waiting for its
schedule_delivery_time), `deliver_queue` (MO SMS and receipts out as deliver_sm), `store` (the
message store in Redis), `ussd_bridge` and `ussd_relay` (USSD dialogues with SMPP applications,
across workers), `forwarding` and `esme` (our own MT to an upstream SMSC).
"""
