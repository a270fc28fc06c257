"""Imports in a cluster: a CSV import enqueued on API 1 runs in `keel worker`, reports its
progress as events on the cluster's channel, and is read on API 2.

The cluster is core's (tests/support/cluster.py); the events are heard on Redis as core
publishes them, so this needs no realtime.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.accounts import Account
from tests.support.cluster import (
    CLUSTER_SETTINGS,
    EVENT_SECONDS,
    ApiProcess,
    Cluster,
    heard_events,
    job_messages,
)

IMPORT_BATCH_SIZE = 20


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    """Small batches, so a short file reports progress several times."""
    return {**CLUSTER_SETTINGS, "import_batch_size": str(IMPORT_BATCH_SIZE)}


def product_csv(rows: int, *, bad_row_at: int | None = None) -> bytes:
    """`rows` valid products SKU-CL-0000...; optionally one more row with a negative price."""
    lines = ["sku,name,description,price,currency,stock,is_active"]
    for i in range(rows):
        if i == bad_row_at:
            lines.append("SKU-CL-BAD,Broken,Negative price,-5,EUR,1,true")
        lines.append(
            f"SKU-CL-{i:04d},Cluster product {i},Made by the cluster test,{100 + i},EUR,7,"
        )
    return ("\n".join(lines) + "\n").encode()


async def start_import(api: ApiProcess, admin: Account, csv: bytes) -> str:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.post(
            "/api/v1/imports/products",
            headers=admin.headers,
            files={"file": ("products.csv", csv, "text/csv")},
        )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued", job
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    return str(job["id"])


async def read_job(api: ApiProcess, admin: Account, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        response = await http.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def assert_import_events(messages: list[dict[str, Any]], job_id: str, rows: int) -> None:
    """`job.progress` from 0 to the file's size, at least once per batch, then one
    `job.finished` saying the import succeeded."""
    assert all(set(m) == {"type", "id", "at", "data"} for m in messages), messages
    assert all(m["id"] == job_id for m in messages)
    assert len({json.dumps(m, sort_keys=True) for m in messages}) == len(messages), "duplicates"
    assert all(m["data"]["kind"] == "import_products" for m in messages), messages
    *progress, finished = messages
    assert {m["type"] for m in progress} == {"job.progress"}, messages
    assert len(progress) >= rows // IMPORT_BATCH_SIZE, messages
    done = [m["data"]["done"] for m in progress]
    assert done == sorted(done), "progress only goes forward"
    assert done[0] == 0
    assert done[-1] == progress[-1]["data"]["total"] > 0
    assert finished["type"] == "job.finished"
    assert finished["id"] == job_id
    assert finished["data"]["status"] == "succeeded", finished
    result = finished["data"]["result"]
    assert result["created"] + result["updated"] == rows, result


async def test_an_import_enqueued_on_one_api_process_runs_in_the_worker_and_reads_on_the_other(
    cluster: Cluster, cluster_admin: Account
) -> None:
    rows = 100  # 5 batches of IMPORT_BATCH_SIZE, progress after each
    async with heard_events(cluster) as heard:
        job_id = await start_import(cluster.api1, cluster_admin, product_csv(rows, bad_row_at=50))
        seen = await job_messages(cluster, heard.get, {job_id}, EVENT_SECONDS, "the channel")
    assert_import_events(seen[job_id], job_id, rows)

    job = await read_job(cluster.peer(cluster.api1), cluster_admin, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    assert job["error"] is None
    assert job["progress"]["done"] == job["progress"]["total"] > 0
    result = job["result"]
    assert (result["created"], result["updated"], result["failed"]) == (rows, 0, 1), result
    assert [(e["column"], e["row"]) for e in result["errors"]] == [("price", 52)], result
    assert seen[job_id][-1]["data"]["result"] == result


async def test_an_import_nobody_may_run_is_refused_on_either_api_process(
    cluster: Cluster,
) -> None:
    """Without a token, either process refuses the upload before anything is enqueued."""
    for api in cluster.apis:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            response = await http.post(
                "/api/v1/imports/products",
                files={"file": ("products.csv", product_csv(1), "text/csv")},
            )
        assert response.status_code == 401, (api.name, response.text)
