"""`User.may_see`: the one owner-or-admin rule behind every 404 for someone else's row."""

from __future__ import annotations

import uuid

from keel.features.users.models import Role, User


def _user(*roles: Role) -> User:
    user = User(id=uuid.uuid4(), email="someone@example.com", full_name="S", password_hash="x")
    user.set_roles(set(roles))
    return user


def test_the_owner_sees_their_own_row() -> None:
    customer = _user(Role.CUSTOMER)
    assert customer.may_see(customer.id)


def test_another_customer_does_not() -> None:
    assert not _user(Role.CUSTOMER).may_see(_user(Role.CUSTOMER).id)


def test_a_user_without_roles_sees_only_their_own() -> None:
    nobody = _user()
    assert nobody.may_see(nobody.id)
    assert not nobody.may_see(uuid.uuid4())


def test_an_admin_sees_everyone_s_rows() -> None:
    assert _user(Role.CUSTOMER, Role.ADMIN).may_see(uuid.uuid4())


def test_an_ownerless_row_is_for_admins_only() -> None:
    assert not _user(Role.CUSTOMER).may_see(None)
    assert _user(Role.ADMIN).may_see(None)
