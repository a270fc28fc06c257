"""Accounts: fixed core."""

from keel.core.features import Feature
from keel.features.users.router import router

FEATURE = Feature(name="users", router=router, requires=("auth",))
