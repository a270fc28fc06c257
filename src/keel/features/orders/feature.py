"""Orders, paid through the payments feature (the two are one unit)."""

from keel.core.features import Feature
from keel.features.orders.router import router

FEATURE = Feature(name="orders", router=router, requires=("catalog", "payments"))
