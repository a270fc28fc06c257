"""Jobs as the API shows them (the queue itself is core: `core.jobs`)."""

from keel.core.features import Feature
from keel.features.jobs.router import router

FEATURE = Feature(name="jobs", router=router)
