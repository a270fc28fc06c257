"""The payments feature's settings: which gateway charges cards, and the checks on it.

Its checks join core's (`combination_problems`, `problems` call `super()`), so
`keel check-config` and a production start still name every problem in one message.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from keel.core.config import CoreSettings


class PaymentsSettings(CoreSettings):
    """`KEEL_PAYMENT_GATEWAY*`: the sandbox (development) or an HTTP gateway."""

    payment_gateway: Literal["sandbox", "http"] = "sandbox"
    """`sandbox` approves test cards without charging; production needs `http`."""
    payment_gateway_url: str | None = None
    payment_gateway_api_key: SecretStr | None = None
    payment_gateway_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    def combination_problems(self) -> list[str]:
        found = super().combination_problems()
        if self.payment_gateway == "http" and not self.payment_gateway_url:
            found.append("KEEL_PAYMENT_GATEWAY=http needs KEEL_PAYMENT_GATEWAY_URL")
        return found

    def problems(self) -> list[str]:
        found = super().problems()
        if self.is_production and self.payment_gateway == "sandbox":
            found.append("KEEL_PAYMENT_GATEWAY is sandbox, which charges no real card")
        return found
