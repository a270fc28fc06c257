"""Dependency aliases every feature uses, so endpoint signatures stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from keel.core.config import Settings
from keel.core.database import DbSession, get_database

__all__ = ["AppSettings", "DbSession", "get_app_settings", "get_database"]


def get_app_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_app_settings)]
