"""Menu actions: what each named action a menu may call does, backed by the ledger and the inbox.

`registry.py` maps every action declared in `menus/action_specs/` to its implementation (`money`,
`offers`); `types.py` is what an implementation receives and returns; `detail_notices.py` sends
the "your call detail is ready" SMS. Operator API handlers are not here (`gateway/http/`).
"""
