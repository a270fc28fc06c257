"""The payment gateway interface and its two implementations.

`sandbox` runs in-process with the SPEC's test cards; `http` talks to a remote gateway over
httpx with connect and read timeouts. Every charge carries the caller's idempotency key, so
retrying a charge whose answer was lost cannot charge twice; that is what makes the retries
on connection errors and 5xx answers safe. A whole charge (every attempt and backoff) is
bounded by the gateway's `budget_seconds`, which is what a payment claim must outlive.
A refund gives a charge back, for a charge that succeeded after its order stopped waiting for
it (cancelled, or paid by another payer once a claim had expired).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

from keel.core.logging import get_logger

if TYPE_CHECKING:
    from keel.core.tracing import Tracing
    from keel.features.payments.settings import PaymentsSettings

log = get_logger(__name__)

HTTP_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class CardDetails:
    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)
    holder: str


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    amount: int
    currency: str
    card: CardDetails
    reference: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Charge:
    transaction_id: str


@dataclass(frozen=True, slots=True)
class RefundRequest:
    transaction_id: str
    amount: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class RefundReceipt:
    refund_id: str


class ChargeDeclinedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayUnavailableError(Exception):
    """No answer, or an answer the gateway itself marks as failed (timeout, 5xx): whether
    the charge happened is unknown."""


class GatewayRejectedError(GatewayUnavailableError):
    """The gateway refused the request itself (a 4xx other than a decline): nothing happened."""


CLAIM_MARGIN_SECONDS = 30.0


def claim_lease(gateway: PaymentGateway) -> timedelta:
    """How long a payment (and its idempotency key) stays claimed: the gateway's whole
    budget, every retry included, plus a margin for the database work around the charge.
    A claim outlives any charge its holder can still make; after a crash it runs out."""
    return timedelta(seconds=gateway.budget_seconds + CLAIM_MARGIN_SECONDS)


class PaymentGateway(Protocol):
    @property
    def budget_seconds(self) -> float:
        """The longest one charge (or refund) can take, every retry included."""
        ...

    async def charge(self, request: ChargeRequest) -> Charge: ...

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        """Give a charge back (idempotent per key); GatewayUnavailableError if it could not."""
        ...

    async def close(self) -> None: ...


class SandboxGateway:
    """In-process gateway with the SPEC test cards; any other valid card succeeds."""

    DECLINES: ClassVar[dict[str, str]] = {
        "4000000000009995": "insufficient_funds",
        "4000000000000002": "card_declined",
    }
    TIMEOUT = "4000000000000119"

    async def charge(self, request: ChargeRequest) -> Charge:
        digits = request.card.number
        if digits == self.TIMEOUT:
            raise GatewayUnavailableError("sandbox gateway timed out")
        if digits in self.DECLINES:
            raise ChargeDeclinedError(self.DECLINES[digits])
        # Like a real gateway, the same idempotency key returns the same charge; derived from
        # the key rather than remembered, so a long-running dev server keeps no ledger.
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()
        return Charge(transaction_id=f"sb_{digest[:32]}")

    @property
    def budget_seconds(self) -> float:
        return 1.0  # in-process, no network

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()
        return RefundReceipt(refund_id=f"sbre_{digest[:32]}")

    async def close(self) -> None:
        return None


class HttpGateway:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_seconds: float,
        tracing: Tracing | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        backoffs = sum(RETRY_BACKOFF_SECONDS * n for n in range(1, HTTP_ATTEMPTS))
        self._budget = HTTP_ATTEMPTS * timeout_seconds + backoffs
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 3.0)),
        )
        if tracing is not None:
            tracing.instrument_client(self._client)

    async def charge(self, request: ChargeRequest) -> Charge:
        payload = {
            "amount": request.amount,
            "currency": request.currency,
            "reference": request.reference,
            "card": {
                "number": request.card.number,
                "exp_month": request.card.exp_month,
                "exp_year": request.card.exp_year,
                "cvc": request.card.cvc,
                "holder": request.card.holder,
            },
        }
        answer = await self._post("/charges", payload, request.idempotency_key)
        if answer.status_code == 402:
            raise ChargeDeclinedError(str(_field(answer, "reason", default="declined")))
        return Charge(transaction_id=str(_field(answer, "id")))

    @property
    def budget_seconds(self) -> float:
        return self._budget

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        payload = {
            "charge": request.transaction_id,
            "amount": request.amount,
            "currency": request.currency,
        }
        answer = await self._post("/refunds", payload, request.idempotency_key)
        if answer.status_code != 200:
            raise GatewayUnavailableError(f"gateway refused the refund ({answer.status_code})")
        return RefundReceipt(refund_id=str(_field(answer, "id")))

    async def _post(self, path: str, payload: dict[str, Any], key: str) -> httpx.Response:
        """POST with retries on transport errors and 5xx, within the budget; a 200 or 402
        answer is returned, anything else is GatewayUnavailableError."""
        headers = {"Idempotency-Key": key}
        try:
            async with asyncio.timeout(self._budget):
                return await self._attempts(path, payload, headers)
        except TimeoutError:
            log.warning("gateway_budget_exhausted", path=path)
            raise GatewayUnavailableError("gateway did not answer within its budget") from None

    async def _attempts(
        self, path: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        for attempt in range(1, HTTP_ATTEMPTS + 1):
            try:
                response = await self._client.post(path, json=payload, headers=headers)
            except httpx.TransportError as exc:  # connect error, timeout, reset
                log.warning("gateway_transport_error", attempt=attempt, error=type(exc).__name__)
            else:
                if response.status_code in (200, 402):
                    return response
                if response.status_code < 500:
                    log.error("gateway_rejected_request", status=response.status_code)
                    raise GatewayRejectedError(f"gateway answered {response.status_code}")
                log.warning("gateway_server_error", attempt=attempt, status=response.status_code)
            if attempt < HTTP_ATTEMPTS:
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
        raise GatewayUnavailableError("gateway unavailable after retries")

    async def close(self) -> None:
        await self._client.aclose()


def _field(answer: httpx.Response, name: str, default: str | None = None) -> object:
    """A field of the gateway's JSON answer. An answer that cannot be read (not JSON, no such
    field: a proxy's error page, a broken gateway) says nothing about what happened, so it is
    GatewayUnavailableError, the outcome-unknown 502, never an unexpected 500."""
    try:
        body = answer.json()
        return body[name] if default is None else body.get(name, default)
    except (ValueError, KeyError, TypeError, AttributeError):
        log.error("gateway_answer_unreadable", status=answer.status_code)
        raise GatewayUnavailableError("gateway answer could not be read") from None


def build_gateway(settings: PaymentsSettings, tracing: Tracing | None = None) -> PaymentGateway:
    if settings.payment_gateway == "http":
        assert settings.payment_gateway_url is not None  # settings validation guarantees it
        key = settings.payment_gateway_api_key
        return HttpGateway(
            settings.payment_gateway_url,
            api_key=key.get_secret_value() if key else None,
            timeout_seconds=settings.payment_gateway_timeout_seconds,
            tracing=tracing,
        )
    return SandboxGateway()
