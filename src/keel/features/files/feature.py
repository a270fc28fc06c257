"""Files: uploads, downloads, and the sweep of abandoned direct uploads."""

from keel.core.features import Feature
from keel.features.files.maintenance import sweep_abandoned_uploads
from keel.features.files.openapi import document_limits
from keel.features.files.router import router

FEATURE = Feature(
    name="files",
    router=router,
    maintenance=(sweep_abandoned_uploads,),
    openapi=(document_limits,),
)
