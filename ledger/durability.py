"""What `redis.durability: strict` demands of the store, checked on the running server.

Strict means an acknowledged write is on disk before the answer leaves: the server must keep an
append-only file (`appendonly yes`) and fsync it on every write (`appendfsync always`). The
embedded Redis is started that way; an external server is only checked, never reconfigured: its
settings belong to whoever runs it, so a weaker one refuses the start with the command to fix it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

Durability = Literal["default", "strict"]
Store = aioredis.Redis | RedisCluster

STRICT_SETTINGS: Final = {"appendonly": "yes", "appendfsync": "always"}


def strict_problems(settings: dict[str, str]) -> list[str]:
    """One line per setting that falls short of strict durability (empty when it is met)."""
    problems = []
    for name, wanted in STRICT_SETTINGS.items():
        found = settings.get(name)
        if found != wanted:
            problems.append(
                f"the Redis server has {name} {found or 'unknown'}, strict needs {wanted} "
                f"(CONFIG SET {name} {wanted}, and the same in its redis.conf)"
            )
    return problems


def _decoded(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


async def server_settings(client: Store) -> list[dict[str, str]]:
    """appendonly and appendfsync as each server reports them (CONFIG GET): one server, or
    every primary of a cluster."""
    by_node: dict[str, dict[str, str]] = {}
    for name in STRICT_SETTINGS:
        if isinstance(client, RedisCluster):
            reply: Any = await client.config_get(name, target_nodes=RedisCluster.PRIMARIES)
        else:
            reply = await client.config_get(name)
        # A cluster answers {node: {name: value}} when more than one node replied.
        per_node = reply if all(isinstance(v, dict) for v in reply.values()) else {"": reply}
        for node, values in per_node.items():
            value = _decoded(values.get(name) if name in values else values.get(name.encode()))
            if value is not None:
                by_node.setdefault(str(node), {})[name] = value
    return list(by_node.values()) or [{}]


async def durability_problems(client: Store, durability: Durability) -> list[str]:
    """Why the server behind `client` cannot give `durability`; empty when it can."""
    if durability != "strict":
        return []
    try:
        settings = await server_settings(client)
    except redis.exceptions.ResponseError as e:  # CONFIG renamed or denied (managed services)
        return [f"cannot read the Redis server's persistence settings (CONFIG GET: {e})"]
    problems = [line for node in settings for line in strict_problems(node)]
    return sorted(set(problems))
