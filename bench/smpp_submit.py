"""SMPP benchmark: submit_sm -> submit_sm_resp per second with N outstanding.

    python -m bench.smpp_submit [--window 50] [--seconds 10] [--receipts] [--json out.json]
                                [--binds 1] [--workers 1]

One run measures two servers with the same load generator, each in its own process:
- `ceiling`: a bare asyncio server that frames PDUs with readexactly and answers bind and
  submit_sm with a fixed message id, doing no other work;
- `ussdsim`: `ussdsim serve` with an SMPP account and its embedded Redis: every submit_sm is
  decoded, checked, stored in the subscriber's inbox and the message store before it is answered.
The load generator is our own codec in a separate process: it pre-encodes one submit_sm, patches
the sequence number per request, keeps WINDOW outstanding and reads responses with readexactly.
With --receipts every submit_sm asks for a delivery receipt (registered_delivery 1); the generator
answers each deliver_sm and counts the receipts that arrive inside the measured span.
Each row also gives the CPU each process spent per submit_sm (from /proc, Linux): where the time
goes when the machine, not the server, is the limit.
With --binds N the generator opens N binds, each keeping WINDOW outstanding; with --workers N
ussdsim runs `serve --workers N` (the kernel spreads the binds over the workers, so give it at
least as many binds as workers).
With --profile (one worker) the ussdsim run is profiled as bench/profile_step.py does a step:
cProfile timed by the server's CPU clock over the measured load only (not start-up), its self time
summed by layer (the file a function lives in) and scaled to the unprofiled run's CPU per message,
which a second, unprofiled run in the same process gives; --top N also prints the costliest
functions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    percentile,
    print_table,
    process_tree,
    python,
    start_process,
    stop_process,
    wait_http,
)
from gateway import event_loop
from ledger.embedded import free_port
from sms.smpp.codec import decode_header, encode
from sms.smpp.constants import HEADER_LENGTH, CommandId
from sms.smpp.pdu import make_pdu

SYSTEM_ID, PASSWORD = "bench", "bench123"
DEST = "79001234567"

# --- the ceiling ---------------------------------------------------------------------------


async def _bare_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pack = struct.Struct(">IIII").pack
    resp_body = b"bare0001\x00"
    try:
        while True:
            header = await reader.readexactly(HEADER_LENGTH)
            length, command_id, _, sequence = struct.unpack(">IIII", header)
            if length > HEADER_LENGTH:
                await reader.readexactly(length - HEADER_LENGTH)
            if command_id in (CommandId.bind_transceiver, CommandId.bind_transmitter):
                body = b"bare\x00"
            elif command_id == CommandId.submit_sm:
                body = resp_body
            elif command_id == CommandId.unbind:
                writer.write(pack(HEADER_LENGTH, CommandId.unbind_resp, 0, sequence))
                await writer.drain()
                break
            else:
                body = b""
            writer.write(
                pack(HEADER_LENGTH + len(body), command_id | 0x80000000, 0, sequence) + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def bare_server(port: int) -> None:
    server = await asyncio.start_server(_bare_client, "127.0.0.1", port, reuse_address=True)
    async with server:
        await server.serve_forever()


# --- the profiled server ------------------------------------------------------------------

# First match wins, as in bench/profile_step.py (whose `by_layer` sums them).
SMPP_LAYERS: tuple[tuple[str, str], ...] = (
    ("<smpp ", "smpp codec (encode, decode)"),  # the functions compiled.py generates
    ("<string>", "dataclass __init__ (Pdu, records)"),
    ("<frozen abc>", "isinstance on ABCs"),
    ("sms/smpp/codec.py", "smpp codec (encode, decode)"),
    ("sms/smpp/pdu.py", "smpp codec (encode, decode)"),
    ("sms/smpp/compiled.py", "smpp codec (encode, decode)"),
    ("sms/smpp/tlvs.py", "smpp codec (encode, decode)"),
    ("sms/smpp/coding.py", "smpp codec (encode, decode)"),
    ("sms/smpp/session.py", "smpp session rules"),
    ("sms/smpp/state.py", "smpp session rules"),
    ("sms/smpp/mt.py", "smpp submit (mt.py)"),
    ("sms/smpp/submit_rules.py", "smpp submit (mt.py)"),
    ("sms/smpp/store.py", "smpp message store"),
    ("sms/smpp/queue_items.py", "smpp deliver queue, receipts"),
    ("sms/smpp/deliver_queue.py", "smpp deliver queue, receipts"),
    ("sms/smpp/receipts.py", "smpp deliver queue, receipts"),
    ("sms/smpp/server.py", "smpp edge (server.py, binds)"),
    ("sms/smpp/binds.py", "smpp edge (server.py, binds)"),
    ("sms/smpp/", "smpp, other"),
    ("sms/", "sms: encoding, inboxes"),
    ("gsm0338/", "sms: encoding, inboxes"),
    ("gateway/harness/events.py", "events"),
    ("gateway/harness/metrics.py", "metrics"),
    ("prometheus_client/", "metrics"),
    ("ledger/multiplexed.py", "store client"),
    ("ledger/store_client.py", "store client"),
    ("redis/", "store client"),
    ("hiredis/", "store client"),
    ("ledger/", "ledger"),
    ("gateway/", "gateway, other"),
    ("json/", "json"),
    ("orjson", "json"),
    ("logging/", "logging"),
    ("asyncio/selector_events.py", "socket I/O"),
    ("selectors.py", "socket I/O"),
    ("asyncio/timeouts.py", ""),
    # the wrapper below is the frame the loop's C code runs callbacks under
    ("bench/", "event loop, tasks"),
    ("uvloop/", "event loop, tasks"),
    ("asyncio/", "event loop, tasks"),
)


def serve_profiled(out: str, argv: list[str]) -> None:
    """`ussdsim serve` with a profiler the parent switches on (SIGUSR1) and off (SIGUSR2) around
    the measured load, written to `out` when switched off."""
    import cProfile

    from gateway.cli import main as cli_main

    profiler = cProfile.Profile(time.thread_time_ns, 1e-9)

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)
    raise SystemExit(cli_main(["serve", *argv]))


def print_layers(stats_file: str, per_message_us: float, top: int) -> None:
    from bench import profile_step

    stats = pstats.Stats(stats_file)
    layers = profile_step.by_layer(stats, SMPP_LAYERS)
    total = sum(layers.values()) or 1.0
    print(f"Server CPU by layer (cProfile self time), scaled to {per_message_us:g} µs per message")
    print_table(
        [
            {
                "layer": layer,
                "share": f"{seconds / total:.1%}",
                "us_per_message": round(seconds / total * per_message_us, 1),
            }
            for layer, seconds in sorted(layers.items(), key=lambda kv: -kv[1])
        ]
    )
    if top:
        stats.sort_stats("tottime").print_stats(top)


# --- the load generator --------------------------------------------------------------------


async def load(
    port: int, window: int, seconds: float, warmup: float, receipts: bool = False, binds: int = 1
) -> dict[str, float]:
    """`binds` connections, each keeping `window` outstanding; figures over all of them."""
    runs = await asyncio.gather(
        *(one_bind(port, window, seconds, warmup, receipts) for _ in range(binds))
    )
    latencies = sorted(t for run in runs for t in run.latencies)
    return {
        "submit_sm_per_s": round(sum(run.ok for run in runs) / seconds),
        "receipts_per_s": round(sum(run.receipts for run in runs) / seconds),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": sum(run.errors for run in runs),
    }


@dataclass
class BindRun:
    ok: int
    errors: int
    receipts: int
    latencies: list[float]


async def one_bind(
    port: int, window: int, seconds: float, warmup: float, receipts: bool
) -> BindRun:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bind = make_pdu(
        "bind_transceiver", 1, system_id=SYSTEM_ID, password=PASSWORD, interface_version=0x34
    )
    writer.write(encode(bind))
    header = await reader.readexactly(HEADER_LENGTH)
    length, _, status, _ = decode_header(header)
    await reader.readexactly(length - HEADER_LENGTH)
    if status != 0:
        raise SystemExit(f"bind refused: status 0x{status:X}")
    template = bytearray(
        encode(
            make_pdu(
                "submit_sm",
                1,
                source_addr="1000",
                source_addr_ton=1,
                destination_addr=DEST,
                short_message=b"Hello world 123",
                registered_delivery=1 if receipts else 0,
            )
        )
    )
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    ok = errors = receipts_seen = 0
    sequence = 1
    clock = time.perf_counter
    start = clock()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    done = asyncio.Event()

    def send(n: int) -> None:
        nonlocal sequence
        out = bytearray()
        for _ in range(n):
            sequence += 1
            struct.pack_into(">I", template, 12, sequence)
            out += template
            sent_at[sequence] = clock()
        writer.write(out)

    async def receive() -> None:
        nonlocal ok, errors, receipts_seen
        while True:
            header = await reader.readexactly(HEADER_LENGTH)
            length, command_id, status, seq = decode_header(header)
            if length > HEADER_LENGTH:
                await reader.readexactly(length - HEADER_LENGTH)
            if command_id == CommandId.enquire_link:
                writer.write(struct.pack(">IIII", 16, CommandId.enquire_link_resp, 0, seq))
                continue
            if command_id == CommandId.deliver_sm:
                writer.write(struct.pack(">IIII", 17, CommandId.deliver_sm_resp, 0, seq) + b"\0")
                if measure_from <= clock() <= stop_at:
                    receipts_seen += 1
                continue
            t0 = sent_at.pop(seq, None)
            if t0 is None:
                continue
            now = clock()
            if now >= measure_from and t0 >= measure_from and now <= stop_at:
                if status == 0:
                    ok += 1
                    latencies.append(now - t0)
                else:
                    errors += 1
            if now < stop_at:
                send(1)
            elif not sent_at:
                done.set()
                return

    send(window)
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.wait_for(done.wait(), warmup + seconds + 10)
    except TimeoutError:
        errors += len(sent_at)
    receiver.cancel()
    writer.write(encode(make_pdu("unbind", sequence + 1)))
    writer.close()
    return BindRun(ok, errors, receipts_seen, latencies)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_children(pid: int) -> list[int]:
    """The embedded store server the gateway started (its child process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if ("valkey" in name or "redis" in name) and int(rest.split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def run_load(
    port: int,
    window: int,
    seconds: float,
    warmup: float,
    receipts: bool,
    watch: dict[str, list[int]],
    binds: int = 1,
) -> dict[str, float]:
    """One load run; adds the CPU µs per submit_sm of the load generator and of each process
    group in `watch`."""

    def cpu(pids: list[int]) -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    before = {name: cpu(pids) for name, pids in watch.items()}
    proc = subprocess.Popen(
        [
            python(),
            "-m",
            "bench.smpp_submit",
            "load",
            "--port",
            str(port),
            "--window",
            str(window),
            "--seconds",
            str(seconds),
            "--warmup",
            str(warmup),
            "--binds",
            str(binds),
            *(["--receipts"] if receipts else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, code, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    if code != 0:
        raise RuntimeError(f"load generator failed ({code})")
    result: dict[str, float] = dict(json.loads(proc.stdout.read().strip().splitlines()[-1]))
    # warmup included: the processes work through it too
    submitted = max(1.0, result["submit_sm_per_s"] * (seconds + warmup))
    for name, pids in watch.items():
        result[f"{name}_us"] = round((cpu(pids) - before[name]) / submitted * 1e6, 1)
    result["loadgen_us"] = round((usage.ru_utime + usage.ru_stime) / submitted * 1e6, 1)
    return result


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def compare(
    window: int,
    seconds: float,
    warmup: float,
    receipts: bool,
    workers: int = 1,
    binds: int = 1,
    profile_to: str | None = None,
) -> list[dict[str, object]]:
    """The ceiling and ussdsim, one load run each; with `profile_to`, a second ussdsim run under
    the profiler, its stats written there."""
    rows: list[dict[str, object]] = []
    bare_port = free_port()
    bare = start_process([python(), "-m", "bench.smpp_submit", "bare", "--port", str(bare_port)])
    with tempfile.TemporaryDirectory() as tmp:
        http_port, smpp_port = free_port(), free_port()
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"http: {{listen: '127.0.0.1:{http_port}'}}\n"
            f"smpp:\n  listen: '127.0.0.1:{smpp_port}'\n"
            f"  accounts: [{{system_id: {SYSTEM_ID}, password: {PASSWORD}, "
            f"window: {window * 2}}}]\n"
            f"redis: {{url: embedded, data_dir: '{tmp}/var'}}\n"
            f"workers: {workers}\n",
            encoding="utf-8",
        )
        serve = ["-m", "gateway.cli", "serve"]
        if profile_to:
            serve = ["-m", "bench.smpp_submit", "serve-profiled", "--out", profile_to]
        server = start_process(
            [python(), *serve, "--config", str(config)], env={"USSDSIM_ADMIN_TOKEN": "bench"}
        )
        try:
            wait_port(bare_port)
            wait_http(f"http://127.0.0.1:{http_port}/healthz")
            wait_port(smpp_port)
            # with workers, the supervisor starts Redis and the workers: the server is all of its
            # processes but Redis
            store = redis_children(server.pid)[:1]
            watch = {"server": [p for p in process_tree(server.pid) if p not in store]}
            if store:
                watch["redis"] = store
            runs = (("ceiling", bare_port, {"server": [bare.pid]}), ("ussdsim", smpp_port, watch))
            for name, port, watched in runs:
                result = run_load(port, window, seconds, warmup, receipts, watched, binds)
                rows.append(
                    {
                        "server": name if name == "ceiling" else f"ussdsim, {workers} worker(s)",
                        "binds": binds,
                        "window": window,
                        **result,
                    }
                )
            if profile_to:
                server.send_signal(signal.SIGUSR1)
                run_load(smpp_port, window, seconds, warmup, receipts, {}, binds)
                server.send_signal(signal.SIGUSR2)
                deadline = time.monotonic() + 60
                while not Path(profile_to).is_file() and time.monotonic() < deadline:
                    time.sleep(0.2)
        finally:
            stop_process(server)
            stop_process(bare)
    ceiling = float(rows[0]["submit_sm_per_s"]) or 1.0  # type: ignore[arg-type]
    keys = [
        "server",
        "binds",
        "window",
        "submit_sm_per_s",
        "of_ceiling",
        "receipts_per_s",
        "p50_ms",
    ]
    keys += ["p99_ms", "errors", "server_us", "redis_us", "loadgen_us"]
    for row in rows:
        row["of_ceiling"] = round(float(row["submit_sm_per_s"]) / ceiling, 2)  # type: ignore[arg-type]
    return [{k: row.get(k, "-") for k in keys} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    b = sub.add_parser("bare", help="run only the ceiling server")
    b.add_argument("--port", type=int, required=True)
    sp = sub.add_parser("serve-profiled", help="ussdsim serve, profiled between SIGUSR1 and 2")
    sp.add_argument("--out", required=True)
    sp.add_argument("--config", required=True)
    ld = sub.add_parser("load", help="run only the load generator; prints one JSON line")
    ld.add_argument("--port", type=int, required=True)
    for p in (parser, ld):
        p.add_argument("--window", type=int, default=50)
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--warmup", type=float, default=2.0)
        p.add_argument("--receipts", action="store_true", help="ask a receipt for every message")
        p.add_argument("--binds", type=int, default=1, help="connections, each with --window")
    parser.add_argument("--workers", type=int, default=1, help="ussdsim serve --workers")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--profile", action="store_true", help="profile ussdsim by layer")
    parser.add_argument("--top", type=int, default=0, help="with --profile: the N costliest")
    args = parser.parse_args()
    if args.mode == "serve-profiled":
        serve_profiled(args.out, ["--config", args.config])
    elif args.mode == "bare":
        # On the loop ussdsim serves on (gateway/event_loop.py), so the ratio compares the work.
        event_loop.run(bare_server(args.port))
    elif args.mode == "load":
        result = asyncio.run(
            load(args.port, args.window, args.seconds, args.warmup, args.receipts, args.binds)
        )
        print(json.dumps(result))
    else:
        if args.profile and args.workers != 1:
            parser.error("--profile profiles one worker")
        with tempfile.TemporaryDirectory() as tmp:
            stats_file = f"{tmp}/server.prof" if args.profile else None
            rows = compare(
                args.window,
                args.seconds,
                args.warmup,
                args.receipts,
                args.workers,
                args.binds,
                stats_file,
            )
            print_table(rows)
            if stats_file:
                print()
                print_layers(stats_file, float(rows[1]["server_us"]), args.top)  # type: ignore[arg-type]
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
