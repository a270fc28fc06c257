"""Cancelling jobs through the jobs API: at a checkpoint when running, at once when queued."""

from __future__ import annotations

import uuid

from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.jobs import (
    FAST_JOBS,
    enqueue,
    jobs_client,
    wait_for_job,
)
from tests.support.routes import RECEIVED_EVENTS


async def test_cancelling_a_running_job_stops_it_at_a_checkpoint(
    fast_jobs_settings: Settings,
) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        account = await signed_up(http)
        key = uuid.uuid4().hex
        await http.post(f"/_test/events/{key}")
        job_id = await enqueue(http, account, "test.slow", steps=400, delay=0.02)
        await wait_for_job(http, account, job_id, {"running"}, progressed=True)
        response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers=account.headers)
        assert response.status_code == 200
        assert response.json()["cancel_requested"] is True
        job = await wait_for_job(http, account, job_id)
    assert job["status"] == "cancelled"
    assert job["progress"]["done"] < 400
    types = [e.type for e in RECEIVED_EVENTS[key] if e.id == job_id]
    assert "job.progress" in types
    assert types[-1] == "job.finished"


async def test_cancelling_a_queued_job_means_it_never_runs(live_settings: Settings) -> None:
    settings = live_settings.model_copy(update={**FAST_JOBS, "job_concurrency": 1})
    async with jobs_client(settings) as http:
        account = await signed_up(http)
        blocker = await enqueue(http, account, "test.slow", steps=20, delay=0.05)
        waiting = await enqueue(http, account, "test.echo")
        await wait_for_job(http, account, blocker, {"running"})
        response = await http.post(f"/api/v1/jobs/{waiting}/cancel", headers=account.headers)
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        await wait_for_job(http, account, blocker)
        job = await wait_for_job(http, account, waiting)
    assert job["status"] == "cancelled"
    assert job["attempts"] == 0
    assert job["started_at"] is None
