"""The floor under `gateway/` and `sms/`: what both say or build and neither owns.

- `errors`: the API's error shape (a status, a snake_case code, a human sentence);
- `texts`: safe `{name}` substitution and the pick of a text in the subscriber's language;
- `settings`: what every configuration section is built of (unknown keys refused, HOST:PORT).

Nothing here keeps state or imports another package of ours: the rooms above stand on it, it
stands on nothing.
"""
