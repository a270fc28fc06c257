"""Card checks done before any gateway call: digits, length, Luhn, expiry, CVC.

Each problem is reported on its own field, so a client can point at the wrong input. The card
number never leaves this module except as brand and last four digits (and to the gateway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from keel.core.payments import CardDetails
from keel.core.types import RequestModel


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


class Card(RequestModel):
    """A payment card as the client sends it. `number` and `cvc` are secrets: never logged,
    never stored, never echoed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    number: SecretStr
    exp_month: Annotated[int, Field(ge=1, le=12)]
    exp_year: Annotated[int, Field(ge=2000, le=2100)]
    cvc: SecretStr
    holder: Annotated[str, Field(min_length=1, max_length=100)]

    @field_validator("number")
    @classmethod
    def _number(cls, value: SecretStr) -> SecretStr:
        digits = value.get_secret_value().replace(" ", "")
        if not digits.isdigit():
            raise ValueError("card number must contain digits only")
        if not 13 <= len(digits) <= 19:
            raise ValueError("card number must have 13 to 19 digits")
        if not luhn_valid(digits):
            raise ValueError("card number fails the Luhn check")
        return SecretStr(digits)

    @field_validator("cvc")
    @classmethod
    def _cvc(cls, value: SecretStr) -> SecretStr:
        code = value.get_secret_value()
        if not (code.isdigit() and 3 <= len(code) <= 4):
            raise ValueError("CVC must be 3 or 4 digits")
        return value

    @field_validator("exp_year")
    @classmethod
    def _not_expired(cls, year: int, info: ValidationInfo) -> int:
        month = info.data.get("exp_month")
        today = datetime.now(UTC).date()
        if month is not None and (year, month) < (today.year, today.month):
            raise ValueError("card has expired")
        return year

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
