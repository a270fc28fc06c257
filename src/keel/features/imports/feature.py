"""Bulk product imports: the API and the job kind (`keel import-products` is in `cli.py`,
which `keel` finds by name)."""

from keel.core.features import Feature
from keel.features.imports import jobs
from keel.features.imports.router import router

FEATURE = Feature(
    name="imports",
    router=router,
    requires=("catalog", "files", "jobs"),
    job_handlers={jobs.KIND: jobs.run_product_import},
)
