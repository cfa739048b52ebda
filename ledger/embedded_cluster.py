"""A private three-master cluster on loopback, from the same valkey-server binary as the
embedded store. Used by the test suite to run the ledger and the gateway against a cluster; no
replicas, no persistence: it exists to make the server refuse every cross-slot script.

Cluster nodes and their clients need TCP (the nodes tell clients where each slot lives by
address), so each node listens on a loopback port and asks for the cluster's one random
password; their commands keep their names.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ledger.embedded import EmbeddedRedis, EmbeddedRedisError, free_port

SLOT_COUNT = 16384
BUS_PORT_OFFSET = 10000  # each node also listens on port + 10000 for the cluster bus
_MAX_PORT = 65535 - BUS_PORT_OFFSET


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int] | None = None, attempts: int = 200) -> int:
    """A free loopback port whose cluster bus port is free too."""
    taken = taken or set()
    for _ in range(attempts):
        port = free_port()
        if port <= _MAX_PORT and port not in taken and _port_free(port + BUS_PORT_OFFSET):
            return port
    raise EmbeddedRedisError("no free port pair for a cluster node")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Contiguous, inclusive slot ranges covering all 16384 slots, as `redis-cli --cluster`
    assigns them (0-5460, 5461-10922, 10923-16383 for three masters)."""
    if masters < 1:
        raise ValueError("a cluster needs at least one master")
    per = SLOT_COUNT / masters
    bounds = [round(per * i) for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


def _command(node: EmbeddedRedis, *args: str) -> bytes:
    """One RESP command on a fresh socket; returns the raw reply (enough for OK / bulk text)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    port = node.port
    with node.connect() as s:
        s.sendall(payload)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if _complete(reply):
                break
    if reply.startswith(b"-"):
        raise EmbeddedRedisError(f"port {port}: {' '.join(args[:2])}: {reply.decode().strip()}")
    return reply


def _complete(reply: bytes) -> bool:
    if reply[:1] in (b"+", b"-", b":"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"$":
        header, _, rest = reply.partition(b"\r\n")
        size = int(header[1:])
        return size < 0 or len(rest) >= size + 2
    return False


class EmbeddedCluster:
    """Start `masters` cluster-enabled redis-servers, give each a slot range, join them, and wait
    until every node reports `cluster_state:ok`."""

    def __init__(self, masters: int = 3, *, data_dir: str | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ussdsim-cluster-"))
        self.masters = masters
        self.nodes: list[EmbeddedRedis] = []
        self.password = secrets.token_urlsafe(24)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The seed URL the product takes: any one node; the client discovers the rest."""
        return f"redis+cluster://:{self.password}@127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedCluster:
        try:
            for index in range(self.masters):
                port = free_cluster_port(set(self.ports))
                node_dir = self.data_dir / f"node-{index}"
                node = EmbeddedRedis(
                    node_dir,
                    port=port,
                    appendonly=False,
                    unix_socket=False,
                    guard_commands=False,
                    password=self.password,
                    settings=[
                        ("cluster-enabled", "yes"),
                        ("cluster-config-file", str(node_dir / "nodes.conf")),
                        ("cluster-node-timeout", "5000"),
                    ],
                )
                self.nodes.append(node.start())
            for node, (first, last) in zip(self.nodes, slot_ranges(self.masters), strict=True):
                _command(node, "CLUSTER", "ADDSLOTSRANGE", str(first), str(last))
            for node in self.nodes[1:]:
                _command(node, "CLUSTER", "MEET", "127.0.0.1", str(self.nodes[0].port))
            self._wait_ok(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._state_ok(node) for node in self.nodes):
                return
            time.sleep(0.05)
        raise EmbeddedRedisError("cluster did not reach cluster_state:ok")

    def _state_ok(self, node: EmbeddedRedis) -> bool:
        info = _command(node, "CLUSTER", "INFO").decode(errors="replace")
        known = f"cluster_known_nodes:{self.masters}\r\n"
        return "cluster_state:ok" in info and known in info

    def flushall(self) -> None:
        for node in self.nodes:
            _command(node, "FLUSHALL")

    def stop(self) -> None:
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
