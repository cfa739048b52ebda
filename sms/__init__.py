"""SMS: GSM-7/UCS-2 encoding, short-number keywords, inboxes, the SMPP SMSC."""
