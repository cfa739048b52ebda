"""`python -m gateway.healthcheck`: exit 0 when the server named by `USSDSIM_HTTP` answers
`/healthz`, 1 otherwise. The container's HEALTHCHECK, so a changed port is followed.

Standard library only: it runs every few seconds inside the container.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.error
import urllib.request

DEFAULT_LISTEN = "127.0.0.1:8080"
TIMEOUT_S = 2.0


def browser_url(listen: str) -> str:
    """Where a client on this machine reaches `listen`: a wildcard address (a container's
    0.0.0.0) is reached as the loopback address."""
    host, _, port = listen.rpartition(":")
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        host = "[::1]" if ":" in host else "127.0.0.1"
    return f"http://{host}:{port}/"


def healthy(listen: str) -> bool:
    try:
        with urllib.request.urlopen(browser_url(listen) + "healthz", timeout=TIMEOUT_S) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):  # refused, timed out, a 503 (HTTPError), a bad address
        return False


def main() -> int:
    return 0 if healthy(os.environ.get("USSDSIM_HTTP") or DEFAULT_LISTEN) else 1


if __name__ == "__main__":
    sys.exit(main())
