"""Keeping the Redis job stream bounded without ever dropping a job that was not acknowledged.

taskiq-redis acknowledges a message (`XACK`) but never deletes it, so the stream grows by one
entry per job forever. `XADD MAXLEN` would bound it, but by count: under a backlog it would
cut entries nobody has read yet, or that a worker is running. Instead the sweeper trims with
`XTRIM MINID` up to the oldest entry the consumer group still needs:

- the oldest *pending* entry (delivered to a worker, not acknowledged: running, or held by a
  worker that died and will be claimed by another), and otherwise
- the first entry after the group's `last-delivered-id` (not read by anyone yet).

Every entry below that id was delivered and acknowledged. The bound only ever moves forward
(deliveries advance `last-delivered-id`, acknowledgements shrink the pending list, new
entries get higher ids), so a trim computed a moment ago is still safe when it runs, and any
number of sweepers may trim at once. Without the group (nobody has ever read the stream, or a
Redis restart lost it) nothing is trimmed.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _after(entry_id: str) -> str:
    """The smallest stream id greater than `entry_id` (`ms-seq` → `ms-(seq+1)`)."""
    millis, _, sequence = entry_id.partition("-")
    return f"{millis}-{int(sequence or 0) + 1}"


async def oldest_needed(redis: Redis, stream: str, group: str) -> str | None:
    """The id below which every entry is acknowledged by `group`; None if unknown."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return None
    info = next((g for g in groups if _text(g.get("name")) == group), None)
    if info is None:
        return None
    pending = await redis.xpending(stream, group)
    if pending and int(pending.get("pending") or 0) > 0 and pending.get("min") is not None:
        return _text(pending["min"])
    return _after(_text(info["last-delivered-id"]))


async def trim_acknowledged(redis: Redis, stream: str, group: str) -> int:
    """Delete the entries `group` has acknowledged; the number deleted."""
    bound = await oldest_needed(redis, stream, group)
    if bound is None:
        return 0
    return int(await redis.xtrim(stream, minid=bound, approximate=False))
