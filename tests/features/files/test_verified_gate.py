"""Placing this feature's writes needs a verified email when KEEL_REQUIRE_VERIFIED_EMAIL is
on: the account-lifecycle test drives every such route; this pins that it finds ours."""

from __future__ import annotations

from tests.support.app import verified_only_routes


def test_creating_is_behind_the_verified_email_gate() -> None:
    assert ("POST", "/api/v1/files") in verified_only_routes()
