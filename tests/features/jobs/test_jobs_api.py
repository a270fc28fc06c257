from __future__ import annotations

import json

from keel.features.jobs.schemas import JobResponse
from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.assertions import assert_error_body
from tests.support.jobs import enqueue, jobs_client, live_admin, wait_for_job


async def test_users_list_their_own_jobs_and_admins_all(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        alice = await signed_up(http)
        bob = await signed_up(http)
        admin = await live_admin(http, fast_jobs_settings)
        mine = [await enqueue(http, alice, "test.echo", n=n) for n in range(3)]
        theirs = await enqueue(http, bob, "test.echo")
        for job_id in mine:
            await wait_for_job(http, alice, job_id)

        page = (await http.get("/api/v1/jobs?page_size=2", headers=alice.headers)).json()
        assert page["total"] == 3
        assert page["has_next"] is True
        assert {job["id"] for job in page["items"]} <= set(mine)
        everyone = (await http.get("/api/v1/jobs", headers=admin.headers)).json()
        assert {job["id"] for job in everyone["items"]} >= {*mine, theirs}
        shape = page["items"][0]
        assert set(shape) == {
            "id", "kind", "status", "progress", "attempts", "result", "error",
            "cancel_requested", "created_at", "started_at", "finished_at",
        }  # fmt: skip


async def test_someone_elses_job_is_not_found(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        alice = await signed_up(http)
        bob = await signed_up(http)
        job_id = await enqueue(http, alice, "test.echo")
        response = await http.get(f"/api/v1/jobs/{job_id}", headers=bob.headers)
        assert_error_body(response, 404, "NOT_FOUND")
        response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers=bob.headers)
        assert_error_body(response, 404, "NOT_FOUND")
        await wait_for_job(http, alice, job_id)


async def test_an_admin_reads_anyones_job(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        alice = await signed_up(http)
        admin = await live_admin(http, fast_jobs_settings)
        job_id = await enqueue(http, alice, "test.echo")
        job = await wait_for_job(http, admin, job_id)
    assert job["status"] == "succeeded"


async def test_a_finished_job_cannot_be_cancelled(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        alice = await signed_up(http)
        job_id = await enqueue(http, alice, "test.echo")
        await wait_for_job(http, alice, job_id)
        response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice.headers)
        body = assert_error_body(response, 409, "CONFLICT")
    assert body["details"] == {"status": "succeeded"}


async def test_jobs_need_a_login(fast_jobs_settings: Settings) -> None:
    async with jobs_client(fast_jobs_settings) as http:
        assert_error_body(await http.get("/api/v1/jobs"), 401, "UNAUTHORIZED")
        unknown = "00000000-0000-4000-8000-000000000000"
        alice = await signed_up(http)
        response = await http.get(f"/api/v1/jobs/{unknown}", headers=alice.headers)
        assert_error_body(response, 404, "NOT_FOUND")


async def test_a_listed_job_is_its_own_read(fast_jobs_settings: Settings) -> None:
    """Both are written from rows, not from the schema: key for key what `JobResponse` dumps."""
    async with jobs_client(fast_jobs_settings) as http:
        alice = await signed_up(http)
        job_id = await enqueue(http, alice, "test.echo", n=7)
        finished = await wait_for_job(http, alice, job_id)
        listed = (await http.get("/api/v1/jobs", headers=alice.headers)).json()["items"]
    assert json.dumps(listed) == json.dumps([finished])
    dumped = json.loads(JobResponse.model_validate(finished).model_dump_json())
    assert json.dumps(finished) == json.dumps(dumped)
    assert finished["result"] == {"echo": {"n": 7}}
