"""Realtime in a cluster: an event a job produces in `keel worker` reaches WebSocket clients
on either API process, once each, and again after Redis restarted under them.

The cluster is core's (tests/support/cluster.py). The job is of a kind no feature handles:
the worker fails it and publishes `job.finished`, so this needs no other feature.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets

from tests.support.accounts import Account
from tests.support.cluster import (
    EVENT_SECONDS,
    RECOVERY_SECONDS,
    ApiProcess,
    Cluster,
    enqueue_job,
    finished_row,
    job_messages,
    redis_outage,
)

NO_HANDLER = "cluster.no_handler"
Socket = websockets.ClientConnection


@asynccontextmanager
async def subscribed(api: ApiProcess, account: Account, scope: str) -> AsyncIterator[Socket]:
    url = f"{api.ws_url}/api/v1/ws?token={account.access_token}&scope={scope}"
    async with websockets.connect(url, open_timeout=10) as ws:
        async with asyncio.timeout(10):
            first = json.loads(await ws.recv())
        assert first == {"type": "subscribed", "scope": scope}, first
        yield ws


async def socket_messages(
    cluster: Cluster, sockets: dict[str, Socket], job_id: str, seconds: float
) -> dict[str, list[dict[str, Any]]]:
    """Each socket's messages about `job_id`, read until its `job.finished`."""

    async def receive(ws: Socket) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await ws.recv())
        return message

    read = await asyncio.gather(
        *(
            job_messages(cluster, lambda ws=ws: receive(ws), {job_id}, seconds, where)
            for where, ws in sockets.items()
        )
    )
    return {where: messages[job_id] for where, messages in zip(sockets, read, strict=True)}


def assert_failed_for_no_handler(messages: list[dict[str, Any]], job_id: str) -> None:
    """The worker's one event for a job it cannot run: `job.finished`, failed, saying why."""
    assert [m["type"] for m in messages] == ["job.finished"], messages
    (finished,) = messages
    assert set(finished) == {"type", "id", "at", "data"}, finished
    assert finished["id"] == job_id
    assert finished["data"]["kind"] == NO_HANDLER, finished
    assert finished["data"]["status"] == "failed", finished


@asynccontextmanager
async def on_both_processes(cluster: Cluster, admin: Account) -> AsyncIterator[dict[str, Socket]]:
    """An admin's socket on API 1 for everyone's events, and one on API 2 for their own."""
    async with (
        subscribed(cluster.api1, admin, scope="all") as on_api1,
        subscribed(cluster.peer(cluster.api1), admin, scope="own") as on_api2,
    ):
        yield {"api1": on_api1, "api2": on_api2}


async def assert_finished_on_both(
    cluster: Cluster, sockets: dict[str, Socket], job_id: str, seconds: float
) -> None:
    seen = await socket_messages(cluster, sockets, job_id, seconds)
    for messages in seen.values():
        assert_failed_for_no_handler(messages, job_id)
    # The same events, once each, whichever process the client is connected to.
    assert seen["api1"] == seen["api2"]


async def test_a_job_event_reaches_websocket_clients_on_either_api_process(
    cluster: Cluster, cluster_admin: Account
) -> None:
    async with on_both_processes(cluster, cluster_admin) as sockets:
        job_id = await enqueue_job(cluster, NO_HANDLER, owner_id=cluster_admin.id)
        await assert_finished_on_both(cluster, sockets, job_id, EVENT_SECONDS)


async def test_after_redis_restarts_fan_out_recovers_without_restarting_keel(
    cluster: Cluster, cluster_admin: Account
) -> None:
    keel = (cluster.api1, cluster.api2, cluster.worker)
    pids = [process.pid for process in keel]
    async with on_both_processes(cluster, cluster_admin) as sockets:
        async with redis_outage(cluster):
            pass  # both API processes are ready again after it: re-subscribed to the channel
        # The worker's first publish after the restart can be lost: Keel's Redis client does
        # not retry a command on a pooled connection the restart closed (the pool `from_url`
        # builds has no retry policy), and events are fire-and-forget. A job that publishes
        # nothing but `job.finished` would lose it, so a first one takes that loss.
        warm_up = await enqueue_job(cluster, NO_HANDLER, owner_id=cluster_admin.id)
        await finished_row(cluster, warm_up, RECOVERY_SECONDS)
        job_id = await enqueue_job(cluster, NO_HANDLER, owner_id=cluster_admin.id)
        # The sockets stayed open through the outage (they never depended on Redis).
        await assert_finished_on_both(cluster, sockets, job_id, RECOVERY_SECONDS)
    assert all(process.running() for process in keel), cluster.logs()
    assert [process.pid for process in keel] == pids  # nothing was restarted
