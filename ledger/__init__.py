"""The ledger on Redis: subscribers, money, passwords, journal.

It knows nothing of USSD, SMS or HTTP.
"""
