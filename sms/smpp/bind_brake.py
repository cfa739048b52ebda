"""The failed-bind brake, without I/O: how long a bind waits before its password is compared,
and whether its address may bind to the account at all.

A wrong password (or system_id) slows down the (system_id, address) pair it came from; it never
locks anyone out. The pair's next bind is answered only after a delay that doubles with each
recent failure up to a cap, and is then checked like any other: a correct password from that
address still gets in, one from an address with no failures binds at once. The cap stays under
the bind timeouts ESME libraries use (5 s is common), so a slowed client is answered before it
gives up and reconnects. An address's failures for every system_id together count too, at a
quarter of the pace: spraying guesses over many system_ids from one address slows it down as
well. The counts live in Redis (shared by every worker) on the server's clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

# An address's failures over all system_ids weigh this much less than a pair's own.
ADDRESS_SHARE = 4

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class BindBrake:
    first_delay_s: float = 0.5
    max_delay_s: float = 4.0

    def delay(self, pair_failures: int, address_failures: int = 0) -> float:
        """Seconds a bind waits before its credentials are checked."""
        failures = max(pair_failures, address_failures // ADDRESS_SHARE)
        if failures <= 0 or self.first_delay_s <= 0:
            return 0.0
        # 2**failures overflows a float long before it matters: cap the exponent first.
        return min(self.first_delay_s * 2.0 ** min(failures - 1, 32), self.max_delay_s)


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings as networks; a bare address is a network of one."""
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def address_allowed(host: str, allowed: tuple[Network, ...]) -> bool:
    """Whether a peer address lies in one of the networks (none listed: any address)."""
    if not allowed:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a unix socket or something stranger: not a listed network
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in allowed)
