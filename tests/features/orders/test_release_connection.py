"""The orders list on a real pool answers as before now that a read-only page gives its
connection back once fetched (core.database.release_connection); core's tests cover the rest."""

from __future__ import annotations

from keel.main import create_app
from keel.settings import Settings
from tests.support.accounts import signed_up
from tests.support.app import serve


async def test_list_endpoints_answer_as_before_on_a_real_pool(live_settings: Settings) -> None:
    application = create_app(live_settings)
    async with serve(application) as http:
        buyer = await signed_up(http)
        first = await http.get("/api/v1/orders", headers=buyer.headers)
        me = await http.get("/api/v1/users/me", headers=buyer.headers)
        second = await http.get("/api/v1/orders", headers=buyer.headers, params={"page": 2})
        bad = await http.get("/api/v1/orders", headers=buyer.headers, params={"page": 0})
    assert first.status_code == 200
    assert first.json() == {"items": [], "total": 0, "page": 1, "page_size": 20, "has_next": False}
    assert me.json()["email"] == buyer.email
    assert second.json()["page"] == 2
    assert bad.status_code == 422
