"""Every feature's job handlers by kind, the way `keel.models` gathers every model.

The API (embedded jobs) and `keel worker` both run with this registry; a new job kind is
added here.
"""

from keel.core.jobs.handlers import JobHandlers
from keel.features.imports import jobs as imports

HANDLERS: JobHandlers = {imports.KIND: imports.run_product_import}
