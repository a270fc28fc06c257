"""`python -m keel_audit`."""

from __future__ import annotations

import sys

from keel_audit.cli import main

sys.exit(main())
