"""Test data factories (polyfactory): valid payloads by default, overridden per test."""

from __future__ import annotations

from polyfactory import Use
from polyfactory.factories.pydantic_factory import ModelFactory

from keel.features.users.schemas import UserCreate


class UserCreateFactory(ModelFactory[UserCreate]):
    email = Use(lambda: f"{ModelFactory.__faker__.unique.user_name()}@example.com")
    password = Use(lambda: ModelFactory.__faker__.password(length=16))
    full_name = Use(ModelFactory.__faker__.name)
