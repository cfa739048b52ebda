"""The ledger on Redis: subscribers, money, passwords, journal.

Subscribers and balances in integer kopecks, passwords, blocking, number groups, offers and bonus
points, documents, cross-slot transfers; every mutation one Lua script (`lua/`) that validates,
applies and journals atomically. The Redis connection (`store_client`) and the embedded Redis
(`embedded`, `embedded_cluster`) live here too. It knows nothing of USSD, SMS or HTTP and imports
nothing from `gateway/`, `menus/` or `sms/`.
"""
