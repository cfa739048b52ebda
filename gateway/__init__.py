"""The asyncio edge of ussdsim, in rooms named for their concern.

- `http/`: the HTTP API (endpoint table, handlers, middleware, OpenAPI, client limits, web phone).
- `ussd/`: USSD dialogs: the TS 22.030 parser, sessions in Redis, the dialog service, routing,
  and the applications behind routes (built-in menus, HTTP apps, SMPP apps).
- `actions/`: what a menu's named actions do, on the ledger and the inbox (the registry and its
  implementations; the declarations are `menus/action_specs/`).
- `harness/`: what test harnesses drive: the clock, fault personas, the event log, metrics and
  scenario files.
- At the top: one server process and its wiring (`cli`, `config`, which composes the sections
  with `sms.config`'s, `runtime`, `server`, `workers`) and what the edges share (`abuse`,
  `subscribers`, `texts`, `terminal`).

Business rules live in `menus/` and `ledger/`, not here; SMS and the SMSC live in `sms/`, which
imports nothing from here: `runtime` hands it the clock, events, metrics, faults, the directory
and the abuse limits (typed by `sms.ports`). API errors and text templates are on `shared/`.
"""
