"""ussdsim for other people's test suites: a typed client of the HTTP API (blocking and asyncio),
a simulator process started on free ports, and the pytest plugin built on both.

Only the public HTTP API and the `ussdsim serve` command line are used from here, so a test suite
sees exactly what any other client of the simulator sees.
"""

from ussdsim.client import (
    ApiError,
    AsyncClient,
    AsyncDialog,
    AsyncInbox,
    Client,
    Dialog,
    Inbox,
    Reply,
    ServerUnreachable,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncDialog",
    "AsyncInbox",
    "Client",
    "Dialog",
    "Inbox",
    "Reply",
    "ServerUnreachable",
]
