"""A real `ussdsim serve` in a child process: free ports, a private data folder, a known operator
token and SMPP account, readiness awaited on `/healthz`, and a stop by its PID.

The ports are the server's own choice (`:0`), read back from the lines it prints, so two suites
on one machine never race for a port; the log goes to a file so a server that cannot start is
reported with its own last lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ussdsim.client import Client, ServerUnreachable

HTTP_LINE = re.compile(r"ussdsim: HTTP on (http://\S+)")
SMPP_LINE = re.compile(r"ussdsim: SMPP on (\S+):(\d+)")
LAST_LINES = 30


class SimulatorFailed(RuntimeError):
    """The server exited, or was not ready in time; the message ends with its last log lines."""


class Simulator:
    """`with Simulator() as sim: sim.client().dial(...)`; `url`, `token`, `smpp_address`,
    `smpp_system_id` and `smpp_password` tell other clients where and how to connect."""

    def __init__(
        self,
        *,
        config: str | os.PathLike[str] | None = None,
        clock: str = "virtual",
        workers: int = 1,
        redis: str = "embedded",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.config = Path(config).resolve() if config is not None else None
        self.clock = clock
        self.workers = workers
        self.redis = redis
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.token = secrets.token_urlsafe(24)
        self.smpp_system_id = "ussdsim"
        self.smpp_password = secrets.token_hex(4)
        self.url = ""
        self.smpp_address: tuple[str, int] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        assert self._dir is not None, "not started"
        return Path(self._dir.name) / "serve.log"

    def log_tail(self, lines: int = LAST_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def client(self) -> Client:
        return Client(self.url, self.token)

    def command(self) -> list[str]:
        # `-I`: the server's own packages, never a same-named `gateway` from the caller's working
        # directory, PYTHONPATH or user site (a consumer's suite often has one).
        args = [sys.executable, "-I", "-m", "gateway.cli", "serve", "--http", "127.0.0.1:0"]
        args += ["--smpp", "127.0.0.1:0", "--data", "var", "--clock", self.clock]
        args += ["--redis", self.redis, "--workers", str(self.workers)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args + self.extra_args

    def start(self) -> Simulator:
        # Its own folder as the working directory: no config.yaml is picked up by accident.
        self._dir = tempfile.TemporaryDirectory(prefix="ussdsim-")
        env = {
            **os.environ,
            "USSDSIM_ADMIN_TOKEN": self.token,
            "USSDSIM_SMPP_SYSTEM_ID": self.smpp_system_id,
            "USSDSIM_SMPP_PASSWORD": self.smpp_password,
            **self.env,
        }
        # PYTHONPATH too: `-I` already ignores it, but the server's own children must as well.
        for variable in ("USSDSIM_HTTP", "USSDSIM_SMPP", "USSDSIM_DATA", "PYTHONPATH"):
            env.pop(variable, None)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self._dir.name,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, why: str) -> SimulatorFailed:
        return SimulatorFailed(f"ussdsim serve {why}; its last log lines:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        client: Client | None = None
        try:
            while time.monotonic() < deadline:
                code = self.proc.poll()
                if code is not None:
                    raise self._fail(f"exited with status {code} before it was ready")
                if client is None:
                    client = self._read_addresses()
                else:
                    with contextlib.suppress(ServerUnreachable):
                        if client.healthy():
                            return
                time.sleep(0.05)
        finally:
            if client is not None:
                client.close()
        raise self._fail(f"was not ready within {self.startup_timeout_s:g} s")

    def _read_addresses(self) -> Client | None:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        http = HTTP_LINE.search(text)
        if http is None:
            return None
        self.url = http.group(1)
        smpp = SMPP_LINE.search(text)
        self.smpp_address = (smpp.group(1), int(smpp.group(2))) if smpp else None
        return self.client()

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM to the server's own PID (it stops its workers and Redis), SIGKILL if it
        lingers; the exit status, and the data folder removed."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            code = self.proc.returncode
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        return code

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
