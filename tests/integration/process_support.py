"""What a test can see of processes from /proc: whether one lives, what a server started."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for its parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def cmdline(pid: int) -> str:
    """The command line of `pid`, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def survivors(pids: Iterable[int], timeout_s: float) -> list[int]:
    """The `pids` still alive after waiting (boundedly) for all of them to go."""
    waiting = list(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = [pid for pid in waiting if alive(pid)]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.05)


def listening_pids(port: int, pids: Iterable[int | str]) -> set[str]:
    """Which of `pids` hold a socket listening on `port` (IPv4, from /proc)."""
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
            listening.add(f"socket:[{fields[9]}]")
    held = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in listening for fd in Path(f"/proc/{pid}/fd").iterdir()):
                held.add(str(pid))
    return held
