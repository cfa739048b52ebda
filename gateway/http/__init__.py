"""The HTTP edge: aiohttp routes, the endpoint table, the OpenAPI document, client limits and the
web phone's static pages.

`routes.py` is the one table of endpoints with their handlers; `app.py` builds the application and
its middleware (operator token, error shape, metrics); `endpoint.py` has what handlers share.
Handlers stay thin: they parse, call a service of the runtime and shape the answer. No USSD or
ledger rule belongs here.
"""
