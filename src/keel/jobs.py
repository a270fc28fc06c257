"""Every feature's job handlers by kind, the way `keel.models` gathers every model.

The API (embedded jobs) and `keel worker` both run with this registry; a new job kind is
added here, and so is periodic upkeep.
"""

from keel.core.jobs.handlers import JobHandlers, Maintenance
from keel.features.files import maintenance as files
from keel.features.imports import jobs as imports

HANDLERS: JobHandlers = {imports.KIND: imports.run_product_import}

MAINTENANCE: tuple[Maintenance, ...] = (files.sweep_abandoned_uploads,)
"""Periodic upkeep, run by every process that consumes jobs (`KEEL_MAINTENANCE_SECONDS`)."""
