"""Authentication: fixed core (every other feature's users log in through it)."""

from keel.core.features import Feature
from keel.features.auth.router import router

FEATURE = Feature(name="auth", router=router, requires=("users",))
