"""The product catalog."""

from keel.core.features import Feature
from keel.features.catalog.router import router

FEATURE = Feature(name="catalog", router=router, requires=("files",))
