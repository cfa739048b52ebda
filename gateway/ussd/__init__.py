"""USSD dialogs: the MMI parser (`mmi.py`, sans-IO), sessions in Redis with a step lease
(`sessions.py`), the dialog service (`service.py`), routing a code to its application
(`routing.py`), the applications behind routes (`apps/`) and the HTTP dialects external ones
speak (`dialects/`).

Nothing here speaks HTTP or SMPP: the HTTP edge calls the service, and SMPP applications are
reached through the bridge in `sms/smpp/`.
"""
