"""The declared actions a menu may call: name, arguments, outcomes and returned values, as data.

`catalogue.py` is the whole set (`ACTIONS`), checked against every menu before it is served;
`money.py` and `offers.py` declare their areas. Implementations live in `gateway/actions/`.
"""
