"""One pipelined connection per process for the store's commands that do not wait.

redis-py spends most of a USSD step's client CPU around the commands rather than in them: a
pool checkout and release (an asyncio.Condition and a Lock), observability records, a timeout
context per reply read. `bench/store_client.py` measures 150 µs of client CPU for a pipeline of
three commands through the pool against 20 µs here. Redis answers the commands of one connection
in the order they were sent, so every caller can share one connection: each request is written
whole (a MULTI ... EXEC never has another caller's command inside it), its replies are the next
ones hiredis parses, matched first-in first-out. Writes made in one turn of the loop leave in one
system call.

What needs a connection of its own keeps redis-py's pool: blocking reads (`XREAD BLOCK`, `BLPOP`
...), WATCH, pub/sub, connection state (`SELECT`, `CLIENT ...`), `DEBUG`, replies read undecoded,
scripts registered on a pipeline. A cluster (`redis+cluster://`) and TLS (`rediss://`) keep
redis-py entirely.

Guarantees kept from the pooled client: replies are parsed by the same response callbacks; a
reply that does not come within the client's socket timeout fails that request with
`TimeoutError` (the connection stays; the late reply is read and dropped, never handed to another
caller); a dropped connection fails what was in flight with `ConnectionError`, and a client made
with `retry_once` sends such a request once more on a fresh connection, as redis-py's retry does.
A caller cancelled while waiting leaves its reply to be dropped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import hiredis
import redis.asyncio as aioredis
import redis.exceptions
from redis._parsers.base import BaseParser
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import parse_url
from redis.client import EMPTY_RESPONSE, NEVER_DECODE

# Commands that block the connection, change its state, or are answered more than once.
OWN_CONNECTION: Final = frozenset(
    {
        "AUTH",
        "BLMOVE",
        "BLMPOP",
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BZMPOP",
        "BZPOPMAX",
        "BZPOPMIN",
        "DEBUG",
        "DISCARD",
        "EXEC",
        "HELLO",
        "MONITOR",
        "MULTI",
        "PSUBSCRIBE",
        "PSYNC",
        "PUNSUBSCRIBE",
        "QUIT",
        "READONLY",
        "READWRITE",
        "RESET",
        "SELECT",
        "SSUBSCRIBE",
        "SUBSCRIBE",
        "SUNSUBSCRIBE",
        "SYNC",
        "UNSUBSCRIBE",
        "UNWATCH",
        "WAIT",
        "WAITAOF",
        "WATCH",
    }
)
_BLOCKING_READS: Final = frozenset({"XREAD", "XREADGROUP"})
# Command names are a small fixed set in practice; the bound only guards against a caller that
# makes up new ones.
_REMEMBERED_NAMES: Final = 512


def command_words(name: object) -> tuple[object, ...]:
    """The first words of a command as redis-py sends them ("SCRIPT LOAD" is two)."""
    if isinstance(name, str) and " " in name:
        return tuple(name.split())
    return (name,)


def needs_own_connection(
    args: Sequence[Any], options: Mapping[str, Any], pooled: frozenset[str] = frozenset()
) -> bool:
    first = args[0]
    text = first.decode(errors="replace") if isinstance(first, bytes) else str(first)
    word = text.split(" ", 1)[0].upper()
    if word in OWN_CONNECTION or word in pooled or word == "CLIENT" or NEVER_DECODE in options:
        return True
    # redis-py spells the option b"BLOCK" in some versions and "BLOCK" in others.
    return word in _BLOCKING_READS and any(
        isinstance(a, str | bytes) and a.upper() in ("BLOCK", b"BLOCK") for a in args
    )


def pack(args: Sequence[Any]) -> bytes:
    first = args[0]
    try:
        if type(first) is str and " " not in first and type(args) is tuple:
            packed: bytes = hiredis.pack_command(args)  # the usual shape: no copy
        else:
            packed = hiredis.pack_command(cast(Any, command_words(first) + tuple(args[1:])))
        return packed
    except TypeError:
        bad = next(a for a in args if isinstance(a, bool) or a is None or not _packable(a))
        raise redis.exceptions.DataError(
            f"Invalid input of type: '{type(bad).__name__}'. "
            "Convert to a bytes, string, int or float first."
        ) from None


def _packable(value: object) -> bool:
    return isinstance(value, str | bytes | int | float | memoryview) and not isinstance(value, bool)


class _Request:
    __slots__ = ("count", "future", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int) -> None:
        self.future = future
        self.count = count
        self.replies: list[Any] = []


class Wire(asyncio.Protocol):
    """The socket half: bytes in go to the parser, a loss fails what is in flight."""

    def __init__(self, owner: Multiplexer) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(
            encoding="utf-8",
            errors="strict",
            replyError=BaseParser.parse_error,
            protocolError=redis.exceptions.InvalidResponse,
        )
        self.in_flight: deque[_Request] = deque()
        self.outgoing: list[bytes] = []
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        in_flight = self.in_flight
        try:
            while (reply := reader.gets()) is not False:
                head = in_flight[0]
                head.replies.append(reply)
                if len(head.replies) == head.count:
                    in_flight.popleft()
                    if not head.future.done():
                        head.future.set_result(head.replies)
        except (redis.exceptions.InvalidResponse, IndexError) as e:
            # A reply nobody asked for, or bytes that are not RESP: nothing after it can be
            # matched any more.
            self.fail(redis.exceptions.ConnectionError(f"store protocol error: {e!r}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError("Connection closed by server."))
        self.owner.forget(self)

    def fail(self, error: Exception) -> None:
        self.lost = self.lost or error
        while self.in_flight:
            request = self.in_flight.popleft()
            if not request.future.done():
                request.future.set_exception(error)
        self.outgoing.clear()

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if self.lost is not None:
            future.set_exception(self.lost)
            return future
        self.in_flight.append(_Request(future, count))
        if not self.outgoing:
            loop.call_soon(self.flush)
        self.outgoing.append(packed)
        return future

    def flush(self) -> None:
        if self.outgoing and self.transport is not None and self.lost is None:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()


class Multiplexer:
    """The shared connection to one server, opened on first use and again after a loss."""

    def __init__(self, url: str, *, timeout: float | None, retry_once: bool) -> None:
        params = parse_url(url)
        self.address = (
            params.get("path") or f"{params.get('host', 'localhost')}:{params.get('port', 6379)}"
        )
        self._params = params
        self.timeout = timeout
        self.retry_once = retry_once
        self._wire: Wire | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Future[Wire] | None = None
        self._pooled_commands: frozenset[str] = frozenset()
        # The verdict of `needs_own_connection` by command name, where the name alone decides
        # (every name but the blocking-read ones): a dictionary look-up per command.
        self._own_by_name: dict[object, bool] = {}

    @property
    def pooled_commands(self) -> frozenset[str]:
        """Commands left to the pool's connections (those a server knows by other names)."""
        return self._pooled_commands

    @pooled_commands.setter
    def pooled_commands(self, names: frozenset[str]) -> None:
        self._pooled_commands = names
        self._own_by_name.clear()

    def needs_own_connection(self, args: Sequence[Any], options: Mapping[str, Any]) -> bool:
        first = args[0]
        own = self._own_by_name.get(first)
        if own is None:
            word = first.decode(errors="replace") if isinstance(first, bytes) else str(first)
            if word.split(" ", 1)[0].upper() in _BLOCKING_READS:
                return needs_own_connection(args, options, self._pooled_commands)
            own = needs_own_connection((first,), {}, self._pooled_commands)
            if len(self._own_by_name) < _REMEMBERED_NAMES:
                self._own_by_name[first] = own
        return own or NEVER_DECODE in options

    @staticmethod
    def supports(url: str) -> bool:
        return parse_url(url).get("connection_class") in (
            None,
            aioredis.UnixDomainSocketConnection,
        )

    def forget(self, wire: Wire) -> None:
        if self._wire is wire:
            self._wire = None

    async def request(self, packed: bytes, count: int) -> list[Any]:
        # One coroutine for the usual path (a connection open, no retry needed): each request
        # of a step passes here.
        for attempt in (1, 2):
            loop = asyncio.get_running_loop()
            wire = self._wire
            try:
                if wire is None or wire.lost is not None or self._loop is not loop:
                    wire = await self._open()
                future = wire.send(packed, count)
                if self.timeout is None:
                    return await future
                handle = loop.call_later(self.timeout, _expire, future, self.address)
                try:
                    return await future
                finally:
                    handle.cancel()
            except redis.exceptions.ConnectionError:
                if attempt == 2 or not self.retry_once:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _open(self) -> Wire:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._abandon()
            self._loop = loop
        if self._opening is None:
            self._opening = loop.create_future()
            try:
                wire = await self._connect(loop)
            except BaseException as e:
                opening, self._opening = self._opening, None
                opening.set_exception(e)
                opening.exception()  # retrieved: whoever else waits gets it too
                raise
            self._wire = wire
            opening, self._opening = self._opening, None
            opening.set_result(wire)
            return wire
        return await asyncio.shield(self._opening)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Wire:
        params = self._params
        wire: Wire | None = None
        try:
            async with asyncio.timeout(self.timeout):
                if params.get("path"):
                    _, wire = await loop.create_unix_connection(lambda: Wire(self), params["path"])
                else:
                    host, port = params.get("host", "localhost"), params.get("port", 6379)
                    _, wire = await loop.create_connection(lambda: Wire(self), host, port)
                await self._handshake(wire)
            return wire
        except BaseException as e:
            if wire is not None and wire.transport is not None:
                wire.transport.abort()
            if isinstance(e, TimeoutError):
                raise redis.exceptions.TimeoutError(
                    f"Timeout connecting to {self.address}"
                ) from None
            if isinstance(e, OSError):
                raise redis.exceptions.ConnectionError(
                    f"Error {e.errno} connecting to {self.address}. {e.strerror or e}."
                ) from None
            raise

    async def _handshake(self, wire: Wire) -> None:
        params = self._params
        commands: list[tuple[Any, ...]] = []
        if params.get("password") is not None:
            user = params.get("username")
            commands.append(
                ("AUTH", user, params["password"]) if user else ("AUTH", params["password"])
            )
        if params.get("db"):
            commands.append(("SELECT", params["db"]))
        if not commands:
            return
        packed = b"".join(hiredis.pack_command(command) for command in commands)
        for reply in await wire.send(packed, len(commands)):
            if isinstance(reply, Exception):
                raise reply

    def _abandon(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            # The loop it belonged to may be closed already.
            with contextlib.suppress(RuntimeError):
                wire.transport.abort()

    async def aclose(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None and wire.transport is not None:
            wire.fail(redis.exceptions.ConnectionError("the store client was closed"))
            with contextlib.suppress(RuntimeError):
                wire.transport.close()


def _expire(future: asyncio.Future[list[Any]], address: str) -> None:
    if not future.done():
        future.set_exception(redis.exceptions.TimeoutError(f"Timeout reading from {address}"))


# The shared connection speaks RESP2; these callbacks give replies the shapes redis-py's legacy
# responses have on any wire protocol (a RESP2 hash reply is a flat list until HGETALL's turns
# it into a dict).
_RESP2_CALLBACKS: Final = aioredis.Redis(protocol=2, decode_responses=True).response_callbacks


# The callback of each command name met so far (None: the reply as it comes); the callbacks'
# own table is case-insensitive, so it upper-cases the name at every look-up.
_CALLBACK_BY_NAME: Final[dict[object, Any]] = {}


def _parsed(args: Sequence[Any], options: dict[str, Any], reply: Any) -> Any:
    if options:
        options.pop("keys", None)
        options.pop(EMPTY_RESPONSE, None)
    name = args[0]
    try:
        callback = _CALLBACK_BY_NAME[name]
    except KeyError:
        callback = _RESP2_CALLBACKS.get(name)
        if len(_CALLBACK_BY_NAME) < _REMEMBERED_NAMES:
            _CALLBACK_BY_NAME[name] = callback
    return reply if callback is None else callback(reply, **options)


class MultiplexedPipeline(Pipeline):
    """A pipeline sent as one request on the shared connection."""

    mux: Multiplexer

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.watching or args[0] == "WATCH":
            return super().execute_command(*args, **options)
        self.command_stack.append((args, options))  # queued, as redis-py's pipeline does
        return self

    async def reset(self) -> None:  # type: ignore[override]
        if self.watching or self.connection is not None:
            await super().reset()  # type: ignore[no-untyped-call]
            return
        # Nothing was taken from the pool: only the queue to clear.
        self.command_stack = []
        self.scripts = set()
        self.explicit_transaction = False

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        pooled = self.watching or self.connection is not None or bool(self.scripts)
        own = self.mux.needs_own_connection
        for args, options in stack:
            if pooled:
                break
            pooled = own(args, options)
        if pooled:
            return await super().execute(raise_on_error)
        if not stack:
            return []
        try:
            if self.is_transaction or self.explicit_transaction:
                return await self._transaction(stack, raise_on_error)
            return await self._batch(stack, raise_on_error)
        finally:
            await self.reset()

    async def _batch(self, stack: list[Any], raise_on_error: bool) -> list[Any]:
        packed = b"".join([pack(args) for args, _ in stack])
        replies = await self.mux.request(packed, len(stack))
        response: list[Any] = []
        for (args, options), reply in zip(stack, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError):
                response.append(options.get(EMPTY_RESPONSE, reply))
            else:
                response.append(_parsed(args, options, reply))
        if raise_on_error:
            self.raise_first_error(stack, response)
        return response

    async def _transaction(self, stack: list[Any], raise_on_error: bool) -> list[Any]:
        packed = b"".join([pack(("MULTI",)), *(pack(args) for args, _ in stack), pack(("EXEC",))])
        replies = await self.mux.request(packed, len(stack) + 2)
        errors: list[tuple[int, Exception]] = []
        if isinstance(replies[0], redis.exceptions.ResponseError):
            errors.append((0, replies[0]))
        for i, (queued, (args, _)) in enumerate(zip(replies[1:-1], stack, strict=True)):
            if isinstance(queued, redis.exceptions.ResponseError):
                self.annotate_exception(queued, i + 1, args)
                errors.append((i, queued))
        response = replies[-1]
        if isinstance(response, redis.exceptions.ExecAbortError):
            if errors:
                raise errors[0][1] from response
            raise response
        if isinstance(response, Exception):
            raise response
        if response is None:
            raise redis.exceptions.WatchError("Watched variable changed.")
        for i, error in errors:
            response.insert(i, error)
        if len(response) != len(stack):
            raise redis.exceptions.ResponseError(
                "Wrong number of response items from pipeline execution"
            )
        if raise_on_error:
            self.raise_first_error(stack, response)
        return [
            reply if isinstance(reply, Exception) else _parsed(args, options, reply)
            for (args, options), reply in zip(stack, response, strict=True)
        ]


class MultiplexedRedis(aioredis.Redis):
    """redis-py's client with the commands that do not wait sent on one shared connection."""

    mux: Multiplexer | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        mux = self.mux
        if mux is None or mux.needs_own_connection(args, options):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        (reply,) = await mux.request(pack(args), 1)
        if isinstance(reply, redis.exceptions.ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        return _parsed(args, options, reply)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if self.mux is None:
            return super().pipeline(transaction, shard_hint)
        pipe = MultiplexedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.mux = self.mux
        return pipe

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.mux is not None:
            await self.mux.aclose()
        await super().aclose(close_connection_pool)
