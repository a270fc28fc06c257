"""Bulk product imports: the API, the job kind, and `keel import-products`."""

from keel.core.features import Feature
from keel.features.imports import jobs
from keel.features.imports.cli import cli
from keel.features.imports.router import router

FEATURE = Feature(
    name="imports",
    router=router,
    requires=("catalog", "files", "jobs"),
    job_handlers={jobs.KIND: jobs.run_product_import},
    cli=cli,
)
