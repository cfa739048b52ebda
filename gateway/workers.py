"""`ussdsim serve --workers N`: one supervisor, N server processes, one Redis.

The supervisor (the `serve` process) starts the embedded Redis once (when no redis.url is
given), settles what every worker must agree on (the store URL: the embedded store's socket,
whose private directory also tells each worker its renamed commands; the ports, the operator
token, a per-run directory for the metrics of all workers), spawns the workers and forwards
SIGTERM and SIGINT to them. The workers share the HTTP and SMPP ports through SO_REUSEPORT:
the kernel spreads connections over them. Everything a request or a bind needs lives in Redis,
so any worker serves any request.

A worker that dies after it was serving is logged and replaced by a new one; a worker that
cannot start stops the whole server (exit 2 at the start, 1 later), since its siblings run the
same code on the same configuration. More than `MAX_RESPAWNS` replacements within
`RESPAWN_WINDOW_S` also stop the server: a crash loop is louder as an exit than as a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType

from redis.exceptions import RedisError

from gateway import event_loop
from gateway.banner import Listening, banner, print_banner
from gateway.config import Config, SmppAccount, resolve_path
from gateway.harness.faults import apply_config_personas, config_problems
from gateway.harness.metrics import MULTIPROC_ENV
from ledger.embedded import EmbeddedRedis, EmbeddedRedisError
from ledger.store_client import open_store
from sms.smpp.scheduled_store import ScheduledStore
from sms.smpp.store import SmppStore

log = logging.getLogger("ussdsim.workers")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.2
MAX_RESPAWNS = 5
RESPAWN_WINDOW_S = 60.0
_PR_SET_PDEATHSIG = 1


class SupervisorError(Exception):
    """The server cannot run with these workers (a port taken, a worker that cannot start)."""


@dataclass
class WorkerProcess:
    index: int
    process: BaseProcess
    reports: Connection  # the supervisor's end of the worker's "ready"/"failed" pipe
    ready: bool = False
    reporting: bool = True  # until the worker closes its end of the pipe


@dataclass
class Supervisor:
    config: Config
    dev_account: SmppAccount | None = None  # printed with the addresses when serve added it
    handset_token_generated: bool = False  # printed likewise
    embedded: EmbeddedRedis | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    _reserved: list[socket.socket] = field(default_factory=list)
    _metrics_dir: str | None = None
    _stop_signal: int | None = None
    _respawns: list[float] = field(default_factory=list)

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            try:
                worker_config = self._prepare()
                self._start_all(worker_config)
            except (SupervisorError, EmbeddedRedisError, OSError, RedisError) as e:
                print(f"ussdsim: {e}", file=sys.stderr, flush=True)
                return 2
            if self._stop_signal is not None:
                return 0
            self._announce(worker_config)
            return self._watch(worker_config)
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _prepare(self) -> Config:
        """The configuration every worker runs: one store URL, fixed ports, one token."""
        config = self.config
        http = config.http.model_copy(update={"listen": self._settle_port(config.http.listen)})
        smpp = config.smpp
        if smpp.accounts:
            smpp = smpp.model_copy(update={"listen": self._settle_port(smpp.listen)})
        url = config.redis.url
        if url == "embedded":
            fsync = "always" if config.redis.durability == "strict" else "everysec"
            self.embedded = EmbeddedRedis(
                resolve_path(config, config.redis.data_dir),
                fsync=fsync,
                maxmemory=config.redis.maxmemory,
            )
            self.embedded.start()
            url = self.embedded.url
        if smpp.accounts:
            asyncio.run(_recover_deliveries(url, [a.system_id for a in smpp.accounts]))
        if config.faults and not _fault_problems(config):
            # once per run: a worker started later must not undo an operator's change
            # (with problems, every worker refuses to start and says why)
            asyncio.run(_apply_faults(url, config))
        self._metrics_dir = tempfile.mkdtemp(prefix="ussdsim-metrics-")
        # Spawned workers inherit the environment: the library reads this at import time.
        os.environ[MULTIPROC_ENV] = self._metrics_dir
        return config.model_copy(
            update={
                "redis": config.redis.model_copy(update={"url": url}),
                "http": http,
                "smpp": smpp,
                "admin_token": config.admin_token or secrets.token_urlsafe(24),
            }
        )

    def _settle_port(self, listen: str) -> str:
        """A port the workers can all bind. Port 0 becomes one free port, held (with
        SO_REUSEPORT, never listening) until the end so nothing else takes it; a given port is
        checked free first, so a second server cannot silently join this one's port group."""
        host, _, port_text = listen.rpartition(":")
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = int(port_text)
        try:
            if port == 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((host, 0))
                self._reserved.append(sock)
                return f"{host}:{sock.getsockname()[1]}"
            sock.bind((host, port))
            sock.close()
            return listen
        except OSError as e:
            sock.close()
            raise SupervisorError(f"cannot listen on {listen}: {e.strerror}") from e

    # --- workers ----------------------------------------------------------------------------
    def _spawn(self, index: int, worker_config: Config) -> WorkerProcess:
        context = multiprocessing.get_context("spawn")
        reports, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=run_worker,
            args=(worker_config.model_dump_json(), index, child_end),
            name=f"ussdsim-worker-{index}",
        )
        process.start()
        child_end.close()
        worker = WorkerProcess(index, process, reports)
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        return worker

    def _start_all(self, worker_config: Config) -> None:
        for index in range(worker_config.workers):
            self._spawn(index, worker_config)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(w.ready for w in self.workers):
            if self._stop_signal is not None:
                return
            if time.monotonic() > deadline:
                raise SupervisorError("workers did not start in time")
            self._poll(POLL_S)
            for worker in self.workers:
                if not worker.ready and not worker.process.is_alive():
                    raise SupervisorError(
                        f"worker {worker.index} exited at start ({worker.process.exitcode})"
                    )

    def _poll(self, timeout: float) -> list[WorkerProcess]:
        """Wait for a report or a death; read the reports; the workers that died."""
        waitables: list[object] = [w.reports for w in self.workers if w.reporting]
        waitables += [w.process.sentinel for w in self.workers]
        multiprocessing.connection.wait(waitables, timeout)  # type: ignore[arg-type]
        for worker in self.workers:
            while worker.reporting and _readable(worker.reports):
                try:
                    kind, detail = worker.reports.recv()
                except (EOFError, OSError):
                    worker.reporting = False
                    break
                if kind == "ready":
                    worker.ready = True
                elif kind == "failed":
                    raise SupervisorError(f"worker {worker.index} cannot start: {detail}")
        return [w for w in self.workers if w.process.exitcode is not None]

    def _watch(self, worker_config: Config) -> int:
        while self._stop_signal is None:
            try:
                dead = self._poll(POLL_S)
            except SupervisorError as e:
                print(f"ussdsim: {e}", file=sys.stderr, flush=True)
                return 1
            for worker in dead:
                if self._stop_signal is not None:
                    break
                if not worker.ready:
                    print(
                        f"ussdsim: worker {worker.index} exited before serving "
                        f"({worker.process.exitcode}): stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                now = time.monotonic()
                self._respawns = [t for t in self._respawns if now - t < RESPAWN_WINDOW_S]
                if len(self._respawns) >= MAX_RESPAWNS:
                    print(
                        f"ussdsim: {MAX_RESPAWNS} workers died within {RESPAWN_WINDOW_S:.0f} s: "
                        "stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                self._respawns.append(now)
                old_pid = worker.process.pid
                worker.reports.close()
                replacement = self._spawn(worker.index, worker_config)
                log.warning(
                    "worker %d (pid %s) exited with %s; started pid %s in its place",
                    worker.index,
                    old_pid,
                    worker.process.exitcode,
                    replacement.process.pid,
                )
        return 0

    def _announce(self, worker_config: Config) -> None:
        pids = ", ".join(str(w.process.pid) for w in self.workers)
        store = f"{self.embedded.address} (embedded)" if self.embedded else worker_config.redis.url
        listening = Listening(
            http=worker_config.http.listen,
            smpp=worker_config.smpp.listen if worker_config.smpp.accounts else None,
            store=store,
            loop=event_loop.loop_name(),
            workers=f"workers: {len(self.workers)} (pids {pids})",
        )
        # Printed once for all workers so a person can use the operator API; never logged.
        lines = banner(
            self.config,
            listening,
            admin_token=worker_config.admin_token or "",
            dev_account=self.dev_account,
            handset_token_generated=self.handset_token_generated,
        )
        print_banner(lines)

    def _shutdown(self) -> None:
        alive = [w for w in self.workers if w.process.is_alive()]
        if alive:
            print("ussdsim: stopping", file=sys.stderr, flush=True)
        for worker in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker %d did not stop in time: killing it", worker.index)
                worker.process.kill()
                worker.process.join()
            worker.reports.close()
        # The store goes last: workers flush their last writes to it while they stop.
        if self.embedded is not None:
            self.embedded.stop()
        for sock in self._reserved:
            sock.close()
        if self._metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


async def _recover_deliveries(url: str, accounts: list[str]) -> None:
    """Before any worker runs, every deliver_sm a previous run left unacknowledged goes back to
    its queue, whichever worker (of however many) held it; a worker that starts again later
    takes back only its own."""
    client = open_store(url, max_connections=4)
    try:
        store = SmppStore(client)
        claimed = await ScheduledStore(client).recover(accounts)
        if claimed:
            log.info("smpp: %d scheduled MT a previous run had claimed are due again", claimed)
        for account in accounts:
            moved = await store.recover_all(account)
            if moved:
                log.info(
                    "smpp %s: %d unacknowledged deliver_sm put back in the queue", account, moved
                )
    finally:
        await client.aclose()


def _fault_problems(config: Config) -> list[str]:
    return config_problems(
        config.faults,
        accounts=[a.system_id for a in config.smpp.accounts],
        routes=[r.code for r in config.routes],
    )


async def _apply_faults(url: str, config: Config) -> None:
    client = open_store(url, max_connections=4)
    try:
        await apply_config_personas(client, config.faults)
    finally:
        await client.aclose()


def _readable(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (OSError, EOFError):
        return False


def supervise(
    config: Config,
    *,
    dev_account: SmppAccount | None = None,
    handset_token_generated: bool = False,
) -> int:
    """Run `config.workers` server processes until SIGTERM/SIGINT; the exit status."""
    return Supervisor(config, dev_account, handset_token_generated=handset_token_generated).run()


# --- inside a worker --------------------------------------------------------------------------


def _die_with_supervisor() -> None:
    """A worker gets SIGTERM when its supervisor dies, even by SIGKILL (Linux)."""
    if sys.platform != "linux":
        return
    import ctypes

    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def run_worker(config_json: str, index: int, reports: Connection) -> None:
    """One server process: serve until SIGTERM/SIGINT; report "ready" or "failed" first."""
    parent = os.getppid()
    _die_with_supervisor()
    if os.getppid() != parent:  # the supervisor died before the line above took effect
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from gateway.runtime import StartupError

    config = Config.model_validate_json(config_json)
    try:
        event_loop.run(_serve_and_report(config, index, reports))
    except StartupError as e:
        with contextlib.suppress(OSError):
            reports.send(("failed", str(e)))
        sys.exit(2)
    except KeyboardInterrupt:
        pass


async def _serve_and_report(config: Config, index: int, reports: Connection) -> None:
    from gateway.server import serve

    ready = asyncio.Event()

    async def report_ready() -> None:
        await ready.wait()
        reports.send(("ready", os.getpid()))

    reporter = asyncio.create_task(report_ready())
    try:
        await serve(config, ready=ready, announce=False, worker=index)
    finally:
        reporter.cancel()
