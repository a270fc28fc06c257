"""The product CSV import through the API, run by the embedded queue on a real database."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.features.catalog.models import Product
from keel.settings import Settings
from tests.features.files.support import PNG
from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body
from tests.support.databases import opened
from tests.support.jobs import jobs_client, live_admin, wait_for_job
from tests.support.routes import RECEIVED_EVENTS

HEADER = "sku,name,description,price,currency,stock,is_active\n"


@pytest.fixture
def settings_fast(fast_jobs_settings: Settings) -> Settings:
    return fast_jobs_settings.model_copy(update={"import_batch_size": 2})


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(f"{row}\n" for row in rows)).encode()


async def start_import(
    http: httpx.AsyncClient, admin: Account, data: bytes, content_type: str = "text/csv"
) -> httpx.Response:
    return await http.post(
        "/api/v1/imports/products",
        headers=admin.headers,
        files={"file": ("products.csv", data, content_type)},
    )


async def imported(http: httpx.AsyncClient, admin: Account, data: bytes) -> dict[str, Any]:
    response = await start_import(http, admin, data)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    return await wait_for_job(http, admin, job_id)


async def products(settings: Settings) -> dict[str, Product]:
    async with opened(settings.database_url) as database, database.sessionmaker() as session:
        rows = await session.scalars(select(Product))
        return {product.sku: product for product in rows}


async def test_valid_rows_are_imported_and_bad_rows_reported(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        existing = await http.post(
            "/api/v1/products",
            headers=admin.headers,
            json={"sku": "OLD-1", "name": "Old", "price": {"amount": 1, "currency": "EUR"}},
        )
        assert existing.status_code == 201
        job = await imported(
            http,
            admin,
            csv_file(
                'NEW-1,Lamp,"A lamp, bright",1999,EUR,5,true',
                "OLD-1,Renamed,,250,EUR,0,false",
                "BAD-1,No price,,abc,EUR,1,true",
                "BAD-2,Bad currency,,100,euro,1,true",
                "bad sku,Spaces,,100,EUR,1,true",
                "NEW-2,Minimal,,0,USD,,",
            ),
        )
        stored = await products(settings_fast)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["created"], result["updated"], result["failed"]) == (2, 1, 3)
    assert result["errors"] == [
        {"row": 4, "column": "price", "message": result["errors"][0]["message"]},
        {"row": 5, "column": "currency", "message": result["errors"][1]["message"]},
        {"row": 6, "column": "sku", "message": result["errors"][2]["message"]},
    ]
    assert "integer" in result["errors"][0]["message"]
    assert stored["NEW-1"].description == "A lamp, bright"
    assert stored["NEW-1"].price_amount == 1999
    assert (stored["OLD-1"].name, stored["OLD-1"].is_active) == ("Renamed", False)
    assert stored["OLD-1"].id == uuid.UUID(existing.json()["id"])  # updated in place
    assert (stored["NEW-2"].stock, stored["NEW-2"].is_active) == (0, True)
    assert "BAD-1" not in stored
    assert job["progress"]["done"] == job["progress"]["total"] > 0


async def test_importing_the_same_file_twice_changes_nothing_more(
    settings_fast: Settings,
) -> None:
    data = csv_file("A-1,One,,100,EUR,1,true", "A-2,Two,,200,EUR,2,true")
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        first = await imported(http, admin, data)
        second = await imported(http, admin, data)
        stored = await products(settings_fast)
    assert (first["result"]["created"], first["result"]["updated"]) == (2, 0)
    assert (second["result"]["created"], second["result"]["updated"]) == (0, 2)
    assert sorted(stored) == ["A-1", "A-2"]


async def test_a_repeated_sku_takes_the_last_row(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(
            http, admin, csv_file("D-1,First,,100,EUR,1,true", "D-1,Second,,200,EUR,1,true")
        )
        stored = await products(settings_fast)
    assert (job["result"]["created"], job["result"]["updated"]) == (1, 1)
    assert stored["D-1"].name == "Second"


async def test_a_missing_header_column_fails_and_changes_nothing(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(
            http, admin, csv_file("A-1,One,100,EUR", header="sku,name,price,currency\n")
        )
        stored = await products(settings_fast)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"] == "The header is missing the columns: description, stock, is_active"
    assert stored == {}


async def test_a_file_that_is_not_utf8_fails_and_changes_nothing(settings_fast: Settings) -> None:
    valid = [f"OK-{n},Fine,,100,EUR,1,true" for n in range(300)]  # past the sniffed head
    data = csv_file(*valid) + "LATIN-1,Café,,100,EUR,1,true\n".encode("latin-1")
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(http, admin, data)
        stored = await products(settings_fast)
    assert job["status"] == "failed"
    offset = data.index(b"\xe9")
    assert job["error"] == f"The file is not UTF-8 text (an invalid byte at offset {offset})"
    assert stored == {}


@pytest.mark.parametrize("content_type", ["text/csv", "application/octet-stream"])
async def test_a_latin1_upload_is_a_failed_job_not_a_415(
    settings_fast: Settings, content_type: str
) -> None:
    """The upload's type sniffing used to refuse it (no UTF-8 in its first 4 KiB)."""
    data = csv_file("LATIN-1,Café crème,Déjà vu,100,EUR,1,true").decode().encode("latin-1")
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        response = await start_import(http, admin, data, content_type)
        assert response.status_code == 202, response.text
        job = await wait_for_job(http, admin, response.json()["id"])
        stored = await products(settings_fast)
    assert job["status"] == "failed"
    assert job["attempts"] == 1  # a malformed file is not retried
    offset = data.index(b"\xe9")  # the é of Café, in the first row after the header
    assert job["error"] == f"The file is not UTF-8 text (an invalid byte at offset {offset})"
    assert stored == {}


@pytest.mark.parametrize("row", [4, 180])  # inside the upload's sniffed 4 KiB, and past it
async def test_a_nul_byte_is_an_error_of_its_row_only(settings_fast: Settings, row: int) -> None:
    """Past the sniffed head, PostgreSQL refused the batch and the job failed after five
    attempts with nothing imported; inside it, the upload was a 415."""
    rows = [f"OK-{n},Fine,,100,EUR,1,true" for n in range(200)]
    rows.insert(row - 2, "NUL-1,Bad\x00name,,100,EUR,1,true")
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(http, admin, csv_file(*rows))
        stored = await products(settings_fast)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    result = job["result"]
    assert (result["created"], result["failed"]) == (200, 1)
    assert [(e["row"], e["column"]) for e in result["errors"]] == [(row, "name")]
    assert "NUL" in result["errors"][0]["message"]
    assert len(stored) == 200
    assert "NUL-1" not in stored


async def test_the_rows_after_an_over_long_quoted_field_are_read(settings_fast: Settings) -> None:
    """The csv module stops inside a field over its size limit; the rest of that record used
    to be read as the next record, so later rows were misnumbered, misread or swallowed."""
    too_long = "y" * 200_000  # over csv.field_size_limit() (131,072)
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(
            http,
            admin,
            csv_file(
                "A-1,First,,100,EUR,1,true",
                f'LONG-1,Long,"{too_long}\nsecond line, with ""a quote"" and a comma",1,EUR,1,',
                "A-2,After,,100,EUR,1,true",
                'A-3,Quoted,"a ""quoted"" description",100,EUR,1,true',
                "BAD-1,Bad price,,abc,EUR,1,true",
                "A-4,Last,,100,EUR,1,true",
            ),
        )
        stored = await products(settings_fast)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["created"], result["failed"]) == (4, 2)
    assert [(e["row"], e["column"]) for e in result["errors"]] == [(3, None), (6, "price")]
    assert "field larger than field limit" in result["errors"][0]["message"]
    assert sorted(stored) == ["A-1", "A-2", "A-3", "A-4"]
    assert stored["A-3"].description == 'a "quoted" description'


async def test_an_empty_file_fails(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        job = await imported(http, admin, b"\n\n")
    assert job["status"] == "failed"
    assert "header" in job["error"]


async def test_row_errors_are_capped(settings_fast: Settings) -> None:
    settings = settings_fast.model_copy(update={"import_max_errors": 3})
    async with jobs_client(settings) as http:
        admin = await live_admin(http, settings)
        job = await imported(http, admin, csv_file(*[f"E-{n},x,,-1,EUR,1,true" for n in range(10)]))
    result = job["result"]
    assert result["failed"] == 10
    assert len(result["errors"]) == 3
    assert result["errors_truncated"] is True


async def test_import_from_an_uploaded_file(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        upload = await http.post(
            "/api/v1/files",
            headers=admin.headers,
            files={"file": ("p.csv", csv_file("F-1,From file,,100,EUR,1,true"), "text/csv")},
        )
        response = await http.post(
            "/api/v1/imports/products", headers=admin.headers, json={"file_id": upload.json()["id"]}
        )
        assert response.status_code == 202
        job = await wait_for_job(http, admin, response.json()["id"])
    assert job["result"]["created"] == 1


async def test_import_refuses_what_is_not_csv(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        admin = await live_admin(http, settings_fast)
        response = await start_import(http, admin, PNG, "image/png")
        assert_error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        image = await http.post(
            "/api/v1/files", headers=admin.headers, files={"file": ("a.png", PNG, "image/png")}
        )
        by_id = await http.post(
            "/api/v1/imports/products", headers=admin.headers, json={"file_id": image.json()["id"]}
        )
        assert_error_body(by_id, 415, "UNSUPPORTED_MEDIA_TYPE")
        unknown = await http.post(
            "/api/v1/imports/products",
            headers=admin.headers,
            json={"file_id": "00000000-0000-4000-8000-000000000000"},
        )
        assert_error_body(unknown, 404, "NOT_FOUND")
        malformed = await http.post(
            "/api/v1/imports/products", headers=admin.headers, json={"file": "x"}
        )
        assert_error_body(malformed, 422, "VALIDATION_ERROR")
        stored = await http.get("/_test/storage")
        assert stored.json() == [f"files/{image.json()['id']}"]
        jobs = await http.get("/api/v1/jobs", headers=admin.headers)
        assert jobs.json()["total"] == 0


async def test_a_csv_over_the_upload_limit_is_413_and_starts_no_job(
    settings_fast: Settings,
) -> None:
    """The import takes its file through the same streamed limit as `/files`: a declared
    length over it is refused before a byte is stored or a job is queued."""
    settings = settings_fast.model_copy(update={"max_upload_bytes": 8192})
    rows = [f"BIG-{n},Name {n},,100,EUR,1,true" for n in range(10_000)]
    async with jobs_client(settings) as http:
        admin = await live_admin(http, settings)
        response = await start_import(http, admin, csv_file(*rows))
        error = assert_error_body(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["details"] == {"max_bytes": 8192}
        assert error["message"] == "The file exceeds 8192 bytes"
        assert (await http.get("/_test/storage")).json() == []
        jobs = await http.get("/api/v1/jobs", headers=admin.headers)
        assert jobs.json()["total"] == 0
    assert await products(settings) == {}


async def test_only_admins_import(settings_fast: Settings) -> None:
    async with jobs_client(settings_fast) as http:
        customer = await signed_up(http)
        response = await start_import(http, customer, csv_file("X-1,x,,1,EUR,1,true"))
        assert_error_body(response, 403, "FORBIDDEN")


async def test_a_running_import_can_be_cancelled(settings_fast: Settings) -> None:
    settings = settings_fast.model_copy(update={"import_batch_size": 1})
    rows = [f"C-{n},Cancel me,,100,EUR,1,true" for n in range(3000)]
    async with jobs_client(settings) as http:
        admin = await live_admin(http, settings)
        key = uuid.uuid4().hex
        await http.post(f"/_test/events/{key}")
        response = await start_import(http, admin, csv_file(*rows))
        job_id = response.json()["id"]
        await wait_for_job(http, admin, job_id, {"running"}, progressed=True)
        await http.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin.headers)
        job = await wait_for_job(http, admin, job_id)
        count = len(await products(settings))
    assert job["status"] == "cancelled"
    assert 0 < count < 3000  # batches before the checkpoint stay; a rerun completes it
    progress = [e for e in RECEIVED_EVENTS[key] if e.type == "job.progress" and e.id == job_id]
    assert progress
    assert progress[-1].data["total"] == len(csv_file(*rows))
