"""Every feature's models in one import, so `Base.metadata` knows all tables.

Alembic's autogenerate and the test suite's schema checks read the metadata through this
module; a new feature adds its `models` import here.
"""

from keel.core import idempotency as idempotency_models
from keel.core.jobs import models as jobs_models
from keel.core.models import Base
from keel.features.auth import models as auth_models
from keel.features.catalog import models as catalog_models
from keel.features.files import models as files_models
from keel.features.orders import models as orders_models
from keel.features.payments import models as payments_models
from keel.features.users import models as users_models

__all__ = [
    "Base",
    "auth_models",
    "catalog_models",
    "files_models",
    "idempotency_models",
    "jobs_models",
    "orders_models",
    "payments_models",
    "users_models",
]
