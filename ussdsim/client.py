"""A typed client of the ussdsim HTTP API, blocking (`Client`) and asyncio (`AsyncClient`).

Each operation is written once, as a generator that yields the `Call`s it needs and receives
their `Reply`s; the two clients only differ in how they carry a call over httpx. So the rules
(what status is success, how an inbox is waited on) cannot drift apart between them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
HANDSET_TOKEN_VARIABLE = "USSDSIM_HANDSET_TOKEN"
REQUEST_TIMEOUT_S = 30.0

T = TypeVar("T")


class ApiError(Exception):
    """The server refused a call: `code` is the API's error code (`session_not_found`, ...)."""

    def __init__(self, status: int, code: str, message: str, body: Any) -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class ServerUnreachable(ConnectionError):
    """No HTTP answer at all from `url` (refused, reset, timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any = None
    operator: bool = False
    wait_s: float = 0.0  # a long poll: the answer may take this much longer


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # decoded JSON, the raw text when it is not JSON, None when empty

    def expect(self, *statuses: int) -> Any:
        """The body when the status is one of `statuses`, else the server's error raised."""
        if self.status in statuses:
            return self.body
        err = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(err, dict):
            code, message = str(err.get("code", "unknown")), str(err.get("message", ""))
        else:
            code = "unexpected_status"
            message = f"expected {' or '.join(map(str, statuses))}: {str(self.body)[:200]}"
        raise ApiError(self.status, code, message, self.body)


Operation = Generator[Call, Reply, T]


def number(msisdn: str) -> str:
    """A number as a path segment (`+` and all)."""
    return quote(msisdn, safe="")


def _decode(raw: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _options(call: Call, token: str | None, handset_token: str | None) -> dict[str, Any]:
    # A handset call takes the handset token; the operator token is accepted there too.
    bearer = token if call.operator else handset_token or token
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S + call.wait_s)
    return {"json": call.body, "headers": headers, "timeout": timeout}


def _handset_token(given: str | None) -> str | None:
    return given if given is not None else os.environ.get(HANDSET_TOKEN_VARIABLE) or None


def _unreachable(url: str, e: httpx.TransportError) -> ServerUnreachable:
    return ServerUnreachable(url, str(e) or type(e).__name__)


# --- the operations, once for both clients ---------------------------------------------------


def op_call(call: Call) -> Operation[Reply]:
    return (yield call)


def op_dial(msisdn: str, code: str) -> Operation[dict[str, Any]]:
    reply = yield Call("POST", "/v1/ussd", {"msisdn": msisdn, "code": code})
    return dict(reply.expect(200))


def op_answer(session_id: str, text: str) -> Operation[dict[str, Any]]:
    reply = yield Call("POST", f"/v1/ussd/{quote(session_id, safe='')}", {"input": text})
    return dict(reply.expect(200))


def op_cancel(session_id: str) -> Operation[None]:
    (yield Call("DELETE", f"/v1/ussd/{quote(session_id, safe='')}")).expect(204)


def op_sms(sender: str, to: str, text: str) -> Operation[dict[str, Any]]:
    reply = yield Call("POST", "/v1/sms", {"from": sender, "to": to, "text": text})
    return dict(reply.expect(202))


def op_messages(
    msisdn: str, after: int = 0, wait_s: float = 0.0
) -> Operation[list[dict[str, Any]]]:
    query = {"after": after} | ({"wait": f"{wait_s:.3f}"} if wait_s > 0 else {})
    path = f"/v1/subscribers/{number(msisdn)}/inbox?{urlencode(query)}"
    body = (yield Call("GET", path, wait_s=wait_s)).expect(200)
    return list(body["messages"])


def _sms_matches(
    message: Mapping[str, Any], sender: str | None, contains: str | None, matches: str | None
) -> bool:
    text = str(message.get("text", ""))
    return (
        (sender is None or message.get("from") == sender)
        and (contains is None or contains in text)
        and (matches is None or re.search(matches, text) is not None)
    )


def op_wait_for(
    inbox: InboxState,
    sender: str | None,
    contains: str | None,
    matches: str | None,
    timeout: float,
) -> Operation[dict[str, Any]]:
    """The first message after the inbox's position that matches, by long polling; every
    message passed over on the way is consumed, so each is matched once."""
    deadline = time.monotonic() + timeout
    passed_over: list[str] = []
    while True:
        wait = max(0.0, deadline - time.monotonic())
        for message in (yield from op_messages(inbox.msisdn, inbox.position, wait)):
            inbox.position = max(inbox.position, int(message["id"]))
            if _sms_matches(message, sender, contains, matches):
                return message
            passed_over.append(f"from {message.get('from')}: {message.get('text')}")
        if time.monotonic() >= deadline:
            wanted = ", ".join(
                f"{k} {v!r}"
                for k, v in (("from", sender), ("containing", contains), ("matching", matches))
                if v is not None
            )
            seen = "; ".join(passed_over) or "none arrived"
            raise TimeoutError(
                f"no SMS to {inbox.msisdn} ({wanted or 'any'}) within {timeout:g} s; "
                f"passed over: {seen}"
            )


def op_poll(inbox: InboxState, wait_s: float) -> Operation[list[dict[str, Any]]]:
    messages = yield from op_messages(inbox.msisdn, inbox.position, wait_s)
    inbox.position = max([inbox.position, *(int(m["id"]) for m in messages)])
    return messages


def op_skip(inbox: InboxState) -> Operation[None]:
    yield from op_poll(inbox, 0.0)


def op_put_subscriber(msisdn: str, fields: Mapping[str, Any]) -> Operation[dict[str, Any]]:
    reply = yield Call("PUT", f"/v1/subscribers/{number(msisdn)}", dict(fields), operator=True)
    return dict(reply.expect(200, 201))


def op_get_subscriber(msisdn: str) -> Operation[dict[str, Any]]:
    reply = yield Call("GET", f"/v1/subscribers/{number(msisdn)}", operator=True)
    return dict(reply.expect(200))


def op_login(msisdn: str, password: str) -> Operation[dict[str, Any]]:
    path = f"/v1/subscribers/{number(msisdn)}/login"
    return dict((yield Call("POST", path, {"password": password}, operator=True)).expect(200))


def op_clock(advance_s: float | None = None) -> Operation[float]:
    if advance_s is None:
        reply = yield Call("GET", "/v1/clock", operator=True)
    else:
        reply = yield Call("POST", "/v1/clock", {"advance_s": advance_s}, operator=True)
    return float(reply.expect(200)["now"])


def op_fault_set(scope: str, persona: Mapping[str, Any]) -> Operation[dict[str, Any]]:
    reply = yield Call("PUT", f"/v1/faults/{quote(scope, safe=':')}", dict(persona), operator=True)
    return dict(reply.expect(200, 201))


def op_fault_clear(scope: str) -> Operation[None]:
    (yield Call("DELETE", f"/v1/faults/{quote(scope, safe=':')}", operator=True)).expect(200, 204)


def op_faults() -> Operation[dict[str, Any]]:
    return dict((yield Call("GET", "/v1/faults", operator=True)).expect(200))


def op_events(msisdn: str | None, kind: str | None, after: str) -> Operation[list[Any]]:
    """What the event stream holds after `after` ("0": all of it), oldest first."""
    query = {k: v for k, v in (("msisdn", msisdn), ("kind", kind), ("after", after)) if v}
    path = f"/v1/events?{urlencode({**query, 'once': '1'})}"
    reply = yield Call("GET", path, operator=True)
    text = reply.expect(200)
    return list(_sse_events((text if isinstance(text, str) else "").splitlines()))


def parse_sse(lines: list[str]) -> dict[str, Any] | None:
    """The JSON payload of one Server-Sent Event block (its `data:` lines), if any."""
    data = [line[5:].lstrip() for line in lines if line.startswith("data:")]
    if not data:
        return None
    try:
        parsed = json.loads("\n".join(data))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _sse_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    block: list[str] = []
    for line in lines:
        if line:
            block.append(line)
            continue
        event = parse_sse(block)
        block = []
        if event is not None:
            yield event


def op_healthy() -> Operation[bool]:
    return (yield Call("GET", "/healthz")).status == 200


# --- the objects a user holds ----------------------------------------------------------------


@dataclass
class InboxState:
    msisdn: str
    position: int = 0  # the id of the last message consumed


@dataclass
class DialogState:
    screen: dict[str, Any]

    @property
    def session_id(self) -> str:
        return str(self.screen["session_id"])

    @property
    def text(self) -> str:
        return str(self.screen["text"])

    @property
    def end(self) -> bool:
        return bool(self.screen["end"])

    @property
    def msisdn(self) -> str:
        return str(self.screen["msisdn"])


class _Faults:
    """Fault personas by scope (`global`, `smpp:ID`, `app:CODE`); see the README."""

    def __init__(self, run: Callable[[Operation[Any]], Any]) -> None:
        self._run = run

    def set(self, scope: str, **persona: Any) -> Any:
        return self._run(op_fault_set(scope, persona))

    def clear(self, scope: str) -> Any:
        return self._run(op_fault_clear(scope))

    def list(self) -> Any:
        return self._run(op_faults())


class Dialog(DialogState):
    """An open (or ended) USSD session: the last screen, and the answer to it."""

    def __init__(self, client: Client, screen: dict[str, Any]) -> None:
        super().__init__(screen)
        self._client = client

    def reply(self, text: str) -> Dialog:
        self.screen = self._client.run(op_answer(self.session_id, text))
        return self

    def cancel(self) -> None:
        self._client.run(op_cancel(self.session_id))


class Inbox(InboxState):
    def __init__(self, client: Client, msisdn: str, after: int = 0) -> None:
        super().__init__(msisdn, after)
        self._client = client

    def messages(self) -> list[dict[str, Any]]:
        """Every message in the inbox (consumes nothing)."""
        return self._client.run(op_messages(self.msisdn))

    def wait_for(
        self,
        *,
        sender: str | None = None,
        contains: str | None = None,
        matches: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        return self._client.run(op_wait_for(self, sender, contains, matches, timeout))

    def skip(self) -> Inbox:
        """Consume what is there now: later waits see only what arrives after."""
        self._client.run(op_skip(self))
        return self

    def poll(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """The messages after the position (consumed), waiting up to `wait_s` for the first."""
        return self._client.run(op_poll(self, wait_s))


class Clock:
    def __init__(self, client: Client) -> None:
        self._client = client

    def now(self) -> float:
        return self._client.run(op_clock())

    def advance(self, seconds: float) -> float:
        """Move a virtual clock forward; the new time (epoch seconds)."""
        return self._client.run(op_clock(seconds))


class Client:
    """Blocking client: `with Client(url, token) as c: c.dial("9161234567", "*100#").text`.

    `token`: the operator token; `handset_token`: the server's `http.handset_token` (default
    `USSDSIM_HANDSET_TOKEN`), sent on handset calls, which take the operator token too."""

    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, handset_token: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.handset_token = _handset_token(handset_token)
        self._http = httpx.Client(base_url=self.url)
        self.clock = Clock(self)
        self.faults = _Faults(self.run)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call) -> Reply:
        options = _options(call, self.token, self.handset_token)
        try:
            resp = self._http.request(call.method, call.path, **options)
        except httpx.TransportError as e:
            raise _unreachable(self.url, e) from e
        return Reply(resp.status_code, _decode(resp.text))

    def run(self, operation: Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                call = operation.send(self.send(call))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def call(self, method: str, path: str, body: Any = None, *, operator: bool = False) -> Reply:
        """Any API call; an error status is returned, not raised."""
        return self.run(op_call(Call(method, path, body, operator)))

    def dial(self, msisdn: str, code: str) -> Dialog:
        return Dialog(self, self.run(op_dial(msisdn, code)))

    def sms(self, sender: str, to: str, text: str) -> dict[str, Any]:
        """A subscriber's SMS (mobile originated); the accepted message."""
        return self.run(op_sms(sender, to, text))

    def inbox(self, msisdn: str, after: int = 0) -> Inbox:
        return Inbox(self, msisdn, after)

    def put_subscriber(self, msisdn: str, **fields: Any) -> dict[str, Any]:
        return self.run(op_put_subscriber(msisdn, fields))

    def subscriber(self, msisdn: str) -> dict[str, Any]:
        return self.run(op_get_subscriber(msisdn))

    def login(self, msisdn: str, password: str) -> dict[str, Any]:
        return self.run(op_login(msisdn, password))

    def events(
        self, msisdn: str | None = None, kind: str | None = None, after: str = "0"
    ) -> list[dict[str, Any]]:
        return self.run(op_events(msisdn, kind, after))

    def healthy(self) -> bool:
        return self.run(op_healthy())

    def stream(
        self,
        msisdn: str | None = None,
        kind: str | None = None,
        on_open: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Events as they happen, until the caller stops iterating; `on_open` runs once the
        server has subscribed the stream (nothing after that is missed)."""
        query = urlencode({k: v for k, v in (("msisdn", msisdn), ("kind", kind)) if v})
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with self._http.stream(
                "GET", f"/v1/events?{query}", headers=headers, timeout=None
            ) as resp:
                if resp.status_code != 200:
                    resp.read()
                    Reply(resp.status_code, _decode(resp.text)).expect(200)
                if on_open is not None:
                    on_open()
                yield from _sse_events(resp.iter_lines())
        except httpx.TransportError as e:
            raise _unreachable(self.url, e) from e


class AsyncDialog(DialogState):
    def __init__(self, client: AsyncClient, screen: dict[str, Any]) -> None:
        super().__init__(screen)
        self._client = client

    async def reply(self, text: str) -> AsyncDialog:
        self.screen = await self._client.run(op_answer(self.session_id, text))
        return self

    async def cancel(self) -> None:
        await self._client.run(op_cancel(self.session_id))


class AsyncInbox(InboxState):
    def __init__(self, client: AsyncClient, msisdn: str, after: int = 0) -> None:
        super().__init__(msisdn, after)
        self._client = client

    async def messages(self) -> list[dict[str, Any]]:
        return await self._client.run(op_messages(self.msisdn))

    async def wait_for(
        self,
        *,
        sender: str | None = None,
        contains: str | None = None,
        matches: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        return await self._client.run(op_wait_for(self, sender, contains, matches, timeout))

    async def skip(self) -> AsyncInbox:
        await self._client.run(op_skip(self))
        return self

    async def poll(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        return await self._client.run(op_poll(self, wait_s))


class AsyncClock:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def now(self) -> float:
        return await self._client.run(op_clock())

    async def advance(self, seconds: float) -> float:
        return await self._client.run(op_clock(seconds))


class AsyncClient:
    """asyncio client: `async with AsyncClient(url, token) as c: await c.dial(...)`; tokens as
    for `Client`."""

    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, handset_token: str | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.handset_token = _handset_token(handset_token)
        # No pool cap: a load run holds one connection per concurrent subscriber.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self._http = httpx.AsyncClient(base_url=self.url, limits=limits)
        self.clock = AsyncClock(self)
        self.faults = _Faults(self.run)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call) -> Reply:
        options = _options(call, self.token, self.handset_token)
        try:
            resp = await self._http.request(call.method, call.path, **options)
        except httpx.TransportError as e:
            raise _unreachable(self.url, e) from e
        return Reply(resp.status_code, _decode(resp.text))

    async def run(self, operation: Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                call = operation.send(await self.send(call))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def call(
        self, method: str, path: str, body: Any = None, *, operator: bool = False, wait: float = 0
    ) -> Reply:
        return await self.run(op_call(Call(method, path, body, operator, wait)))

    async def dial(self, msisdn: str, code: str) -> AsyncDialog:
        return AsyncDialog(self, await self.run(op_dial(msisdn, code)))

    async def sms(self, sender: str, to: str, text: str) -> dict[str, Any]:
        return await self.run(op_sms(sender, to, text))

    def inbox(self, msisdn: str, after: int = 0) -> AsyncInbox:
        return AsyncInbox(self, msisdn, after)

    async def put_subscriber(self, msisdn: str, **fields: Any) -> dict[str, Any]:
        return await self.run(op_put_subscriber(msisdn, fields))

    async def subscriber(self, msisdn: str) -> dict[str, Any]:
        return await self.run(op_get_subscriber(msisdn))

    async def login(self, msisdn: str, password: str) -> dict[str, Any]:
        return await self.run(op_login(msisdn, password))

    async def events(
        self, msisdn: str | None = None, kind: str | None = None, after: str = "0"
    ) -> list[dict[str, Any]]:
        return await self.run(op_events(msisdn, kind, after))

    async def healthy(self) -> bool:
        return await self.run(op_healthy())
