"""The ledger on Redis: subscribers, money, passwords, journal. Knows nothing of USSD, SMS or HTTP."""
