"""A private server for a scenario run: in-process, embedded Redis in a temporary folder, a
virtual clock and a fresh operator token; everything is stopped and removed afterwards."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.config import load_config
from gateway.http.app import build_app
from gateway.runtime import Runtime


@dataclass(frozen=True)
class OwnServer:
    url: str
    token: str


@asynccontextmanager
async def own_server(config_path: str | Path | None = None) -> AsyncIterator[OwnServer]:
    """Start a server on a free port; `config_path` (optional) supplies the profile and rules."""
    with tempfile.TemporaryDirectory(prefix="ussdsim-scenarios-") as data_dir:
        token = secrets.token_urlsafe(24)
        overrides: dict[tuple[str, ...], Any] = {
            ("redis", "url"): "embedded",
            ("redis", "data_dir"): data_dir,
            ("clock", "mode"): "virtual",
            ("admin_token",): token,
            # Port 0: the system picks a free port, read back once the socket is bound.
            ("http", "listen"): "127.0.0.1:0",
            ("smpp", "listen"): "127.0.0.1:0",
        }
        config = load_config(config_path, env={}, overrides=overrides)
        runtime = await Runtime.start(config)
        try:
            runner = web.AppRunner(build_app(runtime), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                host, port = runner.addresses[0][:2]
                yield OwnServer(f"http://{host}:{port}", token)
            finally:
                await runner.cleanup()
        finally:
            await runtime.close()
