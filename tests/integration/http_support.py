"""Plain blocking HTTP for the tests that drive a `ussdsim serve` subprocess."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


def fetch(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """(status, raw body); an HTTP error status is returned, not raised."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """JSON in, (status, decoded JSON body) out; `token` is sent as the operator bearer."""
    data = json.dumps(body).encode() if body is not None else None
    status, raw = fetch(
        url,
        method,
        data,
        headers={"Content-Type": "application/json"},
        token=token,
        timeout=timeout,
    )
    return status, json.loads(raw or b"null")


def healthy_within(url: str, timeout_s: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    """Whether the server at `url` answers /healthz with 200 in time; False at once if `proc`
    (the server) exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if request(url + "/healthz")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False
