"""The one interface every payment gateway implements, and what its calls answer.

A gateway is called OUTSIDE any database transaction: a charge is a side effect on someone
else's system that no rollback can undo. Its calls never raise for an outcome the caller must
record (a decline, a timeout): they answer with a result whose status says what happened, and
`unknown` when nobody can tell (a timeout, a processing error). Every money-moving call carries
the caller's idempotency key, so repeating it never moves the money twice, and
`lookup_charge` asks the gateway what became of a key without charging anything.

`charge_many` charges a batch (autocharge after a billing run): by default one `charge` after
the other, which is all a gateway with one API call per charge (Stripe) can do; a gateway that
can do better overrides it (the simulated one reads and writes the whole batch at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.money import minor_units

SUCCEEDED = "succeeded"
DECLINED = "declined"
FAILED = "failed"
UNKNOWN = "unknown"
SOFT = "soft"
HARD = "hard"

# Decline codes that no retry of the same card can fix: the card is gone, refused for fraud,
# or its details are wrong. Anything else (insufficient funds, generic declines, issuer
# unavailable...) may pass on a later try.
HARD_DECLINE_CODES = frozenset(
    {
        "stolen_card",
        "lost_card",
        "pickup_card",
        "fraudulent",
        "merchant_blacklist",
        "restricted_card",
        "security_violation",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stop_payment_order",
        "expired_card",
        "incorrect_number",
        "invalid_number",
        "invalid_account",
        "card_not_supported",
        "currency_not_supported",
        "new_account_information_available",
        "transaction_not_allowed",
        "invalid_payment_method",
    }
)


def decline_kind(code: str) -> str:
    """`hard` when only a new payment method can help, else `soft`."""
    return HARD if code in HARD_DECLINE_CODES else SOFT


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: str  # succeeded | declined | unknown
    reference: str = ""  # the gateway's id of the charge (a PaymentIntent id for Stripe)
    decline_code: str = ""
    decline_kind: str = ""  # soft | hard, for declines
    message: str = ""

    @classmethod
    def succeeded(cls, reference: str) -> ChargeResult:
        return cls(SUCCEEDED, reference=reference)

    @classmethod
    def declined(cls, code: str, message: str = "", reference: str = "") -> ChargeResult:
        code = code or "card_declined"
        return cls(
            DECLINED,
            reference=reference,
            decline_code=code,
            decline_kind=decline_kind(code),
            message=message[:500],
        )

    @classmethod
    def unknown(cls, message: str, reference: str = "") -> ChargeResult:
        return cls(UNKNOWN, reference=reference, message=message[:500])


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One charge of a batch: the arguments of `PaymentGateway.charge`."""

    amount: Decimal
    currency: str
    customer_reference: str
    payment_method_reference: str
    idempotency_key: str
    description: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: str  # succeeded | failed | unknown
    reference: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class SavedCard:
    """What the platform keeps of a saved card: the gateway's reference and what may be shown."""

    reference: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class PaymentGateway(Protocol):
    name: str

    def create_customer(self, *, customer_id: int, email: str, name: str) -> str:
        """The gateway's reference of a new customer record."""
        ...

    def attach_payment_method(
        self,
        *,
        customer_reference: str,
        card_number: str = "",
        exp_month: int | None = None,
        exp_year: int | None = None,
        payment_method_reference: str = "",
    ) -> SavedCard:
        """Save a card for the customer: from a card number (tokenized at once, the number
        goes no further) or from a reference the gateway issued (a Stripe pm_...). Raises
        `core.errors.ValidationError` when the gateway refuses the card."""
        ...

    def detach_payment_method(self, *, reference: str) -> None: ...

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        customer_reference: str,
        payment_method_reference: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult: ...

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        """What `charge` answers for each request, in their order."""
        return [
            self.charge(
                amount=request.amount,
                currency=request.currency,
                customer_reference=request.customer_reference,
                payment_method_reference=request.payment_method_reference,
                idempotency_key=request.idempotency_key,
                description=request.description,
            )
            for request in requests
        ]

    def lookup_charge(
        self, *, idempotency_key: str, customer_reference: str
    ) -> ChargeResult | None:
        """What became of the charge sent with `idempotency_key`, or None when the gateway
        never made one (it is then safe to send it again). Charges nothing."""
        ...

    def refund(
        self, *, charge_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> RefundResult: ...

    def lookup_refund(
        self, *, charge_reference: str, idempotency_key: str
    ) -> RefundResult | None: ...


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in the currency's minor units (19.99 USD -> 1999, 500 JPY -> 500)."""
    return int(amount.scaleb(minor_units(currency)))


def from_minor(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-minor_units(currency))
