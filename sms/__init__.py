"""SMS: GSM-7/UCS-2 choice and segmentation (`encoding`), short-number keywords (`keywords`), the
SMS service behind the API and the keywords (`service`), each subscriber's inbox (`inbox`), the
`smpp` and `sms` configuration sections (`config`), and the SMPP 3.4 SMSC (`smpp/`).

Nothing here imports `gateway/`. What the SMS side needs from the server that runs it (the clock,
the event log, metrics, fault personas, the subscriber directory, the abuse limits, password
issuing) is handed to its constructors, typed by the Protocols of `ports`; what it shares with
the USSD side without owning it (API errors, text templates) is on the floor below, `shared/`. A
USSD dialogue over SMPP reaches the session layer through the callbacks of
`sms.smpp.ussd_bridge`.
"""
