"""Card checks done before any gateway call: digits, length, CVC (422), Luhn, expiry (402).

Each problem is reported on its own field, so a client can point at the wrong input. The card
number never leaves this module except as brand and last four digits (and to the gateway).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, field_validator

from keel.core.types import NOT_A_BOOLEAN, RequestModel
from keel.features.payments.gateway import CardDetails


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def brand_of(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(digits[:4]) <= 2720:
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    return "unknown"


NUMBER_PATTERN = r"^[0-9](?: ?[0-9]){12,18}$"
"""13 to 19 ASCII digits, optionally grouped by single spaces (`4242 4242 4242 4242`)."""
CVC_PATTERN = r"^[0-9]{3,4}$"


def _matches(pattern: str, value: SecretStr, message: str) -> None:
    if re.fullmatch(pattern, value.get_secret_value()) is None:
        raise ValueError(message)


class Card(RequestModel):
    """A payment card as the client sends it. `number` and `cvc` are secrets: never logged,
    never stored, never echoed.

    The schema states every rule that is about the text (the patterns below, enforced here
    as written, a 422); the two that are not — the Luhn checksum and expiry against today —
    are what a card network declines, so `decline_reason` reports them and the payment
    answers 402, as Stripe does (`incorrect_number`, `expired_card`), without a gateway call.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    number: Annotated[SecretStr, Field(json_schema_extra={"pattern": NUMBER_PATTERN})]
    exp_month: Annotated[int, Field(ge=1, le=12), NOT_A_BOOLEAN]
    exp_year: Annotated[int, Field(ge=2000, le=2100), NOT_A_BOOLEAN]
    cvc: Annotated[SecretStr, Field(json_schema_extra={"pattern": CVC_PATTERN})]
    holder: Annotated[str, Field(min_length=1, max_length=100)]

    @field_validator("number")
    @classmethod
    def _number(cls, value: SecretStr) -> SecretStr:
        _matches(NUMBER_PATTERN, value, "card number must be 13 to 19 digits")
        return SecretStr(value.get_secret_value().replace(" ", ""))

    @field_validator("cvc")
    @classmethod
    def _cvc(cls, value: SecretStr) -> SecretStr:
        _matches(CVC_PATTERN, value, "CVC must be 3 or 4 digits")
        return value

    def decline_reason(self) -> str | None:
        """Why any network would decline this card, or None: a failed Luhn checksum or an
        expiry month that has passed."""
        if not luhn_valid(self.digits):
            return "incorrect_number"
        today = datetime.now(UTC).date()
        if (self.exp_year, self.exp_month) < (today.year, today.month):
            return "expired_card"
        return None

    @property
    def digits(self) -> str:
        return self.number.get_secret_value()

    @property
    def last4(self) -> str:
        return self.digits[-4:]

    @property
    def brand(self) -> str:
        return brand_of(self.digits)

    def details(self) -> CardDetails:
        """What the gateway needs; the only way the number and CVC leave this object."""
        return CardDetails(
            number=self.digits,
            exp_month=self.exp_month,
            exp_year=self.exp_year,
            cvc=self.cvc.get_secret_value(),
            holder=self.holder,
        )
