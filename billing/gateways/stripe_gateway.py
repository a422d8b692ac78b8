"""The Stripe gateway, on the official `stripe` package.

Customers, card payment methods attached to them (created client-side by Stripe.js: the
platform only ever sees the pm_... id), off-session PaymentIntents confirmed at once with the
caller's idempotency key, and refunds. The API base comes from settings.STRIPE_API_BASE (empty:
Stripe itself), which is how the tests reach a local Stripe-compatible server (localstripe).

The idempotency key also travels in the PaymentIntent's metadata: `lookup_charge` finds the
charge a lost answer was about by listing the customer's charges (with their PaymentIntents),
which reads and never charges. The description travels in the metadata too (localstripe refuses
a PaymentIntent `description`).
"""

from __future__ import annotations

from contextlib import suppress
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings

from billing.gateways.base import ChargeResult, PaymentGateway, RefundResult, SavedCard, to_minor
from core.errors import ValidationError


def _client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise ValidationError(
            "The Stripe gateway needs STRIPE_SECRET_KEY.", code="gateway_not_configured"
        )
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base} if base else None,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _id(value: Any) -> str:
    """An expandable field's id, whether Stripe sent the id or the object."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value.id)


def _metadata(resource: Any) -> dict[str, Any]:
    metadata = getattr(resource, "metadata", None)
    return metadata.to_dict() if metadata is not None else {}


def _decline_code(error: Any) -> str:
    if error is None:
        return ""
    return str(getattr(error, "decline_code", None) or getattr(error, "code", None) or "")


class StripeGateway(PaymentGateway):
    """`charge_many` is the interface's: Stripe takes one PaymentIntent per API call."""

    name = "stripe"

    def create_customer(self, *, customer_id: int, email: str, name: str) -> str:
        customer = _client().v1.customers.create(
            params={
                "email": email,
                "name": name,
                "metadata": {"platform_customer_id": str(customer_id)},
            },
            options={"idempotency_key": f"customer-{customer_id}"},
        )
        return str(customer.id)

    def attach_payment_method(
        self,
        *,
        customer_reference: str,
        card_number: str = "",
        exp_month: int | None = None,
        exp_year: int | None = None,
        payment_method_reference: str = "",
    ) -> SavedCard:
        if card_number or not payment_method_reference.startswith("pm_"):
            raise ValidationError(
                "With Stripe, save a card with the pm_... id that Stripe.js created; card "
                "numbers never reach the platform.",
                code="payment_method_id_required",
                param="payment_method",
            )
        client = _client()
        try:
            method = client.v1.payment_methods.attach(
                payment_method_reference, params={"customer": customer_reference}
            )
        except stripe.CardError as error:
            code = _decline_code(error.error) or "card_declined"
            raise ValidationError(
                error.user_message or "The card was declined.", code=code, param="payment_method"
            ) from None
        except stripe.InvalidRequestError as error:
            raise ValidationError(
                error.user_message or "Stripe refused this payment method.",
                code="invalid_payment_method",
                param="payment_method",
            ) from None
        card = method.card
        if card is None:
            raise ValidationError(
                "Only cards can be saved.",
                code="unsupported_payment_method",
                param="payment_method",
            )
        return SavedCard(
            reference=str(method.id),
            brand=str(card.brand),
            last4=str(card.last4),
            exp_month=int(card.exp_month),
            exp_year=int(card.exp_year),
        )

    def detach_payment_method(self, *, reference: str) -> None:
        # Already detached or deleted at Stripe: the platform's record is what matters.
        with suppress(stripe.InvalidRequestError):
            _client().v1.payment_methods.detach(reference)

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        customer_reference: str,
        payment_method_reference: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        try:
            intent = _client().v1.payment_intents.create(
                params={
                    "amount": to_minor(amount, currency),
                    "currency": currency.lower(),
                    "customer": customer_reference,
                    "payment_method": payment_method_reference,
                    "off_session": True,
                    "confirm": True,
                    "metadata": {
                        "idempotency_key": idempotency_key,
                        "description": description[:500],
                    },
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as error:
            details = error.error
            intent_id = _id(getattr(details, "payment_intent", None)) if details else ""
            return ChargeResult.declined(
                _decline_code(details) or str(error.code or ""),
                error.user_message or "The card was declined.",
                reference=intent_id,
            )
        except stripe.InvalidRequestError as error:
            # A request Stripe will refuse whatever the retry (a detached method...).
            return ChargeResult.declined(
                "invalid_payment_method", error.user_message or "Stripe refused the payment."
            )
        except stripe.StripeError as error:
            # Timeouts, connection failures, Stripe's own errors: nobody knows whether the
            # money moved. Reconciliation asks Stripe later; a retry reuses the key.
            return ChargeResult.unknown(f"{type(error).__name__}: {error.user_message or error}")
        return _intent_result(intent)

    def lookup_charge(
        self, *, idempotency_key: str, customer_reference: str
    ) -> ChargeResult | None:
        charges = _client().v1.charges.list(
            params={"customer": customer_reference, "limit": 100, "expand": ["data.payment_intent"]}
        )
        found: ChargeResult | None = None
        for charge in charges.auto_paging_iter():
            intent = charge.payment_intent
            if intent is None or isinstance(intent, str):
                continue
            if _metadata(intent).get("idempotency_key") != idempotency_key:
                continue
            if charge.status == "succeeded":
                return ChargeResult.succeeded(str(intent.id))
            if charge.status == "pending":
                found = ChargeResult.unknown("The payment is still processing.", str(intent.id))
            elif found is None:
                outcome = getattr(charge, "outcome", None)
                reason = getattr(outcome, "reason", None) if outcome else None
                found = ChargeResult.declined(
                    str(reason or charge.failure_code or "card_declined"),
                    str(charge.failure_message or "The card was declined."),
                    reference=str(intent.id),
                )
        return found

    def refund(
        self, *, charge_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> RefundResult:
        try:
            refund = _client().v1.refunds.create(
                params={
                    "payment_intent": charge_reference,
                    "amount": to_minor(amount, currency),
                    "metadata": {"idempotency_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as error:
            return RefundResult("failed", message=error.user_message or str(error))
        except stripe.StripeError as error:
            return RefundResult("unknown", message=f"{type(error).__name__}: {error}")
        return _refund_result(refund)

    def lookup_refund(self, *, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        refunds = _client().v1.refunds.list(
            params={"payment_intent": charge_reference, "limit": 100}
        )
        for refund in refunds.auto_paging_iter():
            if _metadata(refund).get("idempotency_key") == idempotency_key:
                return _refund_result(refund)
        return None


def _intent_result(intent: stripe.PaymentIntent) -> ChargeResult:
    if intent.status == "succeeded":
        return ChargeResult.succeeded(str(intent.id))
    if intent.status == "requires_action":
        # Off-session: the customer is not there to authenticate; they must pay on-session.
        return ChargeResult.declined(
            "authentication_required",
            "The card asks the customer to authenticate the payment.",
            reference=str(intent.id),
        )
    if intent.status == "requires_payment_method":
        error = intent.last_payment_error
        return ChargeResult.declined(
            _decline_code(error),
            str(getattr(error, "message", "") or "The card was declined."),
            reference=str(intent.id),
        )
    return ChargeResult.unknown(f"The payment is {intent.status}.", reference=str(intent.id))


def _refund_result(refund: stripe.Refund) -> RefundResult:
    if refund.status in ("succeeded", "pending"):
        return RefundResult("succeeded", reference=str(refund.id))
    if refund.status in ("failed", "canceled"):
        return RefundResult(
            "failed",
            reference=str(refund.id),
            message=str(getattr(refund, "failure_reason", "") or "The refund failed."),
        )
    return RefundResult("unknown", reference=str(refund.id), message=f"{refund.status}")
