"""Every feature's models in one import, so `Base.metadata` knows all tables.

Alembic's autogenerate and the test suite's schema checks read the metadata through this
module; a new feature adds its `models` import here.
"""

from keel.core.models import Base

__all__ = ["Base"]
