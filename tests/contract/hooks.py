"""schemathesis hooks of the contract test (`SCHEMATHESIS_HOOKS=tests.contract.hooks`).

- Emails are generated on a domain that can receive mail: `format: email` admits reserved
  names (`x@y.test`) that Keel refuses on purpose (email-validator's special-use domains).
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "email", st.from_regex(r"\A[a-z][a-z0-9]{0,15}@(example\.com|example\.org)\Z")
)
