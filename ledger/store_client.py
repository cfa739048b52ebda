"""One way to open a client on the store, whatever its shape.

`redis://`, `rediss://` and `unix://` reach one server (the embedded store is a `unix://`
socket whose guarded commands answer to per-start names: the client learns them beside the
socket and sends them in place of the plain ones, see ledger/embedded.py);
`redis+cluster://host:port` (or `rediss+cluster://`) seeds a Redis Cluster client that
discovers the other masters itself. Every ledger, session and SMPP script touches the keys of
one hash tag only, so the same code runs on both; the cluster client is handed out under the
single-server type because it offers the same command surface for single-slot commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

from ledger.embedded import renamed_commands
from ledger.multiplexed import MultiplexedRedis, Multiplexer, command_words


def store_full(error: BaseException) -> bool:
    """Whether the store refused a write at its maxmemory (the noeviction policy). redis-py maps
    a plain command's refusal to OutOfMemoryError; a script's arrives as a ResponseError with the
    same text. Every edge asks here, so HTTP's 507 and SMPP's RSYSERR cannot disagree."""
    return isinstance(error, redis.exceptions.OutOfMemoryError) or (
        isinstance(error, redis.exceptions.ResponseError)
        and "OOM command not allowed" in str(error)
    )


_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


class StoreUrlError(ValueError):
    """A store URL the client cannot use; raised before any connection is made."""


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in _CLUSTER_SCHEMES


def cluster_seed_url(url: str) -> str:
    """The plain URL of the seed node in a `redis+cluster://` URL."""
    parts = urlsplit(url)
    if parts.scheme not in _CLUSTER_SCHEMES:
        raise StoreUrlError(f"not a cluster URL: {url!r}")
    if not parts.hostname:
        raise StoreUrlError(f"cluster URL needs host:port: {url!r}")
    if parts.path not in ("", "/", "/0"):
        raise StoreUrlError(f"a cluster has only database 0: {url!r}")
    return urlunsplit((_CLUSTER_SCHEMES[parts.scheme], parts.netloc, "", parts.query, ""))


class _ClusterScript(AsyncScript):
    """A script that a node which does not know it yet runs by EVAL, on that node alone.

    The stock fallback sends SCRIPT LOAD to every master, and many callers doing that at once
    on a fresh cluster client trip over each other's connections; EVAL also caches the script on
    the node, so the next EVALSHA there succeeds."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Any = None,
    ) -> Any:
        keys = list(keys or [])
        args = list(args or [])
        target = client if client is not None else self.registered_client
        try:
            return await target.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await target.eval(cast(str, self.script), len(keys), *keys, *args)


class StoreCluster(RedisCluster):
    """RedisCluster whose scripts load themselves node by node (see _ClusterScript)."""

    def register_script(self, script: str | bytes) -> AsyncScript:  # type: ignore[override]
        return _ClusterScript(self, script)


def renamed_args(args: Sequence[Any], renamed: Mapping[str, str]) -> tuple[Any, ...]:
    """`args` with its command word replaced by the server's name for it, if renamed
    ("CONFIG GET" is sent as "<name> GET")."""
    words = command_words(args[0])
    first = words[0]
    key = first.decode() if isinstance(first, bytes) else str(first)
    name = renamed.get(key.upper())
    if name is None:
        return tuple(args)
    return (name, *words[1:], *args[1:])


def renaming_connection(
    base: type[AbstractConnection], renamed: Mapping[str, str]
) -> type[AbstractConnection]:
    """A connection class of `base`'s kind that sends guarded commands under `renamed` names;
    replies are still parsed by the plain name's callback."""
    table = {name.upper(): new for name, new in renamed.items()}

    class RenamingConnection(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            packed: list[bytes] = super().pack_command(*renamed_args(args, table))
            return packed

    return RenamingConnection


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def open_store(
    url: str,
    *,
    max_connections: int = 100,
    timeout: float | None = None,
    blocking_pool: bool = False,
    retry_once: bool = False,
    multiplexed: bool = True,
) -> aioredis.Redis:
    """A decoding client for `url`.

    `timeout` bounds connect and each reply (None waits forever, for blocking reads).
    `blocking_pool` makes a single-server client wait up to `timeout` for a free connection
    instead of failing when the pool is full; a cluster client keeps `max_connections` per node.
    `retry_once` retries a command once after a dropped connection, never after a timeout.
    `multiplexed` sends the commands that do not wait on one shared connection (see
    ledger/multiplexed.py); a cluster and TLS always use redis-py's own connections.
    """
    kwargs: dict[str, Any] = {"decode_responses": True}
    if timeout is not None:
        kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    if is_cluster_url(url):
        # The cluster client keeps its own retry: it must follow MOVED/ASK redirections.
        cluster = StoreCluster.from_url(
            cluster_seed_url(url), max_connections=max_connections, **kwargs
        )
        return cast(aioredis.Redis, cluster)
    renamed = renamed_commands(url)
    if renamed:
        base = UnixDomainSocketConnection if url.startswith("unix:") else Connection
        kwargs["connection_class"] = renaming_connection(base, renamed)
    if retry_once:
        kwargs["retry"] = Retry(
            NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)
        )
    if blocking_pool:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **kwargs
        )
        client = cast(MultiplexedRedis, MultiplexedRedis.from_pool(pool))
    else:
        client = cast(
            MultiplexedRedis,
            MultiplexedRedis.from_url(url, max_connections=max_connections, **kwargs),
        )
    if multiplexed and Multiplexer.supports(url):
        client.mux = Multiplexer(url, timeout=timeout, retry_once=retry_once)
        # Renamed commands are rare and administrative: they take the pool's connections.
        client.mux.pooled_commands = frozenset(renamed)
    return client


def queue_script(pipe: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> None:
    """Queue `script` on a pipeline by its digest alone. redis-py's own way (`script(...,
    client=pipe)`) asks SCRIPT EXISTS before every such pipeline: a round trip per step."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


async def script_reply(
    reply: Any, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """The reply of a script queued by `queue_script` (the pipeline sent with
    raise_on_error=False); a server that did not know the script yet runs it now, alone."""
    if isinstance(reply, NoScriptError):
        return await script(keys=list(keys), args=list(args))
    if isinstance(reply, Exception):
        raise reply
    return reply


def check_replies(replies: Sequence[Any], skip: int) -> None:
    """Raise the first error among pipeline replies other than the one at `skip` (a script's,
    which `script_reply` answers)."""
    for i, reply in enumerate(replies):
        if i != skip and isinstance(reply, Exception):
            raise reply
