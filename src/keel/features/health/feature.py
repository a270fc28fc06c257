"""The operations endpoints (liveness, readiness): fixed core, mounted at the root."""

from keel.core.features import Feature
from keel.features.health.router import router

FEATURE = Feature(name="health", router=router, versioned=False)
