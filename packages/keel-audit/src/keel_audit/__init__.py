"""keel-audit: a static production-readiness auditor for FastAPI projects.

It reads the project's source (never importing or running it) and reports where it departs
from production practice, with file:line evidence, why it matters and how to fix it.
"""

from __future__ import annotations

__version__ = "0.1.0"
