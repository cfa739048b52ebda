"""SMS: GSM-7/UCS-2 choice and segmentation (`encoding`), short-number keywords (`keywords`), the
SMS service behind the API and the keywords (`service`), each subscriber's inbox (`inbox`), and
the SMPP 3.4 SMSC (`smpp/`).

Nothing here imports the HTTP edge (`gateway.http`) or the USSD layer (`gateway.ussd`): a USSD
dialogue over SMPP reaches the session layer through the callbacks of `sms.smpp.ussd_bridge`.
"""
