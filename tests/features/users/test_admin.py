"""Admin user management, RBAC (403) and object-level authorization (404)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.accounts import Account, signed_up
from tests.support.assertions import assert_error_body

USERS = "/api/v1/users"


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> Account:
    return await signed_up(client, email=f"alice-{uuid.uuid4().hex[:8]}@example.com")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> Account:
    return await signed_up(client, email=f"bob-{uuid.uuid4().hex[:8]}@example.com")


async def test_admin_lists_users_with_pagination(
    client: httpx.AsyncClient, admin: Account, alice: Account, bob: Account
) -> None:
    page = await client.get(USERS, params={"page_size": 2}, headers=admin.headers)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] >= 3
    assert body["page"] == 1
    assert body["page_size"] == 2
    assert len(body["items"]) == 2
    assert body["has_next"] is True
    last = await client.get(USERS, params={"page": 99, "page_size": 2}, headers=admin.headers)
    assert last.json()["items"] == []
    assert last.json()["has_next"] is False


async def test_admin_filters_users(
    client: httpx.AsyncClient, admin: Account, alice: Account, bob: Account
) -> None:
    by_email = await client.get(USERS, params={"email": "ALICE-"}, headers=admin.headers)
    emails = [u["email"] for u in by_email.json()["items"]]
    assert alice.email in emails
    assert bob.email not in emails
    admins = await client.get(USERS, params={"role": "admin"}, headers=admin.headers)
    assert {u["id"] for u in admins.json()["items"]} == {admin.id}
    await client.patch(f"{USERS}/{bob.id}", json={"is_active": False}, headers=admin.headers)
    inactive = await client.get(USERS, params={"is_active": False}, headers=admin.headers)
    assert [u["id"] for u in inactive.json()["items"]] == [bob.id]


async def test_like_wildcards_in_the_email_filter_are_literal(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    response = await client.get(USERS, params={"email": "%"}, headers=admin.headers)
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page_size": 101}, "page_size"),
        ({"role": "root"}, "role"),
        ({"email": "a" * 321}, "email"),
        ({"is_active": "maybe"}, "is_active"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, admin: Account, params: dict[str, object], field: str
) -> None:
    response = await client.get(USERS, params=params, headers=admin.headers)
    error = assert_error_body(response, 422, "VALIDATION_ERROR")
    assert error["details"]["errors"][0]["loc"] == ["query", field]  # type: ignore[index]


async def test_non_admin_gets_403_on_admin_routes(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    assert_error_body(await client.get(USERS, headers=alice.headers), 403, "FORBIDDEN")
    own = await client.patch(
        f"{USERS}/{alice.id}", json={"roles": ["admin"]}, headers=alice.headers
    )
    assert_error_body(own, 403, "FORBIDDEN")
    assert_error_body(
        await client.delete(f"{USERS}/{alice.id}", headers=alice.headers), 403, "FORBIDDEN"
    )


async def test_user_may_read_themself_by_id(client: httpx.AsyncClient, alice: Account) -> None:
    response = await client.get(f"{USERS}/{alice.id}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["email"] == alice.email


async def test_user_a_cannot_see_or_touch_user_b(
    client: httpx.AsyncClient, alice: Account, bob: Account
) -> None:
    url = f"{USERS}/{bob.id}"
    read = await client.get(url, headers=alice.headers)
    patched = await client.patch(url, json={"full_name": "Hacked"}, headers=alice.headers)
    deleted = await client.delete(url, headers=alice.headers)
    missing = await client.get(f"{USERS}/{uuid.uuid4()}", headers=alice.headers)
    for response in (read, patched, deleted):
        assert_error_body(response, 404, "NOT_FOUND")
    # Indistinguishable from a user that does not exist.
    assert read.json()["error"]["message"] == missing.json()["error"]["message"]
    assert (await client.get("/api/v1/users/me", headers=bob.headers)).json()[
        "full_name"
    ] != "Hacked"


async def test_admin_changes_roles_and_activation(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    response = await client.patch(
        f"{USERS}/{alice.id}", json={"roles": ["admin", "customer"]}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "customer"]
    assert (await client.get(USERS, headers=alice.headers)).status_code == 200  # at once
    deactivated = await client.patch(
        f"{USERS}/{alice.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.json()["is_active"] is False
    assert_error_body(await client.get(USERS, headers=alice.headers), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    "body", [{"roles": []}, {"roles": ["root"]}, {"is_active": None}, {"email": "x@example.com"}]
)
async def test_admin_patch_validation(
    client: httpx.AsyncClient, admin: Account, alice: Account, body: dict[str, object]
) -> None:
    response = await client.patch(f"{USERS}/{alice.id}", json=body, headers=admin.headers)
    assert_error_body(response, 422, "VALIDATION_ERROR")


async def test_admin_cannot_lock_themself_out(client: httpx.AsyncClient, admin: Account) -> None:
    url = f"{USERS}/{admin.id}"
    for body in ({"is_active": False}, {"roles": ["customer"]}):
        assert_error_body(
            await client.patch(url, json=body, headers=admin.headers), 409, "CONFLICT"
        )
    assert_error_body(await client.delete(url, headers=admin.headers), 409, "CONFLICT")


async def test_admin_deletes_a_user(
    client: httpx.AsyncClient, admin: Account, alice: Account
) -> None:
    response = await client.delete(f"{USERS}/{alice.id}", headers=admin.headers)
    assert response.status_code == 204
    assert_error_body(
        await client.get(f"{USERS}/{alice.id}", headers=admin.headers), 404, "NOT_FOUND"
    )
    assert_error_body(
        await client.get("/api/v1/users/me", headers=alice.headers), 401, "UNAUTHORIZED"
    )


async def test_unknown_user_is_404_for_admins(client: httpx.AsyncClient, admin: Account) -> None:
    missing = f"{USERS}/{uuid.uuid4()}"
    assert_error_body(await client.get(missing, headers=admin.headers), 404, "NOT_FOUND")
    assert_error_body(
        await client.patch(missing, json={"full_name": "x"}, headers=admin.headers),
        404,
        "NOT_FOUND",
    )


async def test_malformed_user_id_is_404(client: httpx.AsyncClient, admin: Account) -> None:
    """Ids are matched as UUIDs in the path: `not-a-uuid` names no resource (and `/users/me`
    is never taken for an id, so its 405 does not advertise the DELETE of `/users/{id}`)."""
    response = await client.get(f"{USERS}/not-a-uuid", headers=admin.headers)
    assert_error_body(response, 404, "NOT_FOUND")
    options = await client.options(f"{USERS}/me", headers=admin.headers)
    assert_error_body(options, 405, "METHOD_NOT_ALLOWED")
    assert options.headers["allow"] == "GET, PATCH"
