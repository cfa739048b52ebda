"""The HTTP edge: aiohttp routes, the endpoint table, the OpenAPI document, client limits and the
web phone's static pages.

`routes.py` is the one table of endpoints; their handlers live by what they serve: `handset.py`
(dial, answer, SMS, inbox), `subscribers.py` (the operator's view of one subscriber),
`money.py` (payments, transfers, groups, points) and `harness.py` (clock, events, fault
personas, health, metrics). `app.py` builds the application and its middleware (operator token,
error shape, metrics); `endpoint.py` has what handlers share, `handles` first: the path's
number, then the body, read and checked one way for every endpoint. Handlers stay thin: they
call a service of the runtime and shape the answer (`offers.py` and `transfers.py` hold the
larger answer shapes). No USSD or ledger rule belongs here.
"""
