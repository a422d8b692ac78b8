"""Invoices, credit notes, payments, attempts and refunds as webhook events carry them.

The API's representation as plain dicts (same field names, amounts as decimal strings with
the currency's decimals, ISO dates): services must not import the doors' serializers.
tests/webhooks/test_emission.py holds each equal to the API's representation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from billing.models import CreditNote, Invoice, InvoiceLine, Payment, PaymentAttempt, Refund
from core.money import format_amount, minor_units
from customers.webhook_payloads import iso_date, iso_datetime

_TAX_PERCENT_PLACES = Decimal("0.0001")


def amount(value: Decimal | None, currency: str) -> str | None:
    """An amount with exactly the currency's decimals (the API's `AmountField`)."""
    return None if value is None else _formatted(value, currency)


@lru_cache(maxsize=4096, typed=True)
def _formatted(value: Decimal, currency: str) -> str:
    # A billing run formats the same few amounts thousands of times (prices, taxes, zeros).
    # Equal decimals (31.0, 31.00, -0) round to the same string, so the cache may answer for
    # one with the other's; typed: a float is still refused, not answered for its equal.
    return format_amount(value, currency)


def unit_amount(value: Decimal | None, currency: str) -> str | None:
    """A unit price: at least the currency's decimals, more when it carries more."""
    if value is None:
        return None
    exponent = int(Decimal(value).normalize().as_tuple().exponent)
    places = max(-exponent, minor_units(currency))
    return f"{Decimal(value):.{places}f}"


def _quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


class LineValues(NamedTuple):
    """An invoice line as far as its payload shows it, read as plain values: a batch's
    hundreds of lines without model instances. `InvoiceLine.objects...values_list(
    *LINE_VALUES)` reads it (with the coupon's code)."""

    pk: int
    position: int
    kind: str
    description: str
    subscription_id: int | None
    plan_id: int | None
    price_id: int | None
    meter_id: int | None
    period_start: date | None
    period_end: date | None
    proration_days: int | None
    period_days: int | None
    quantity: Decimal
    unit_amount: Decimal
    amount: Decimal
    coupon_code: str | None
    discount_amount: Decimal
    tax_percent: Decimal
    tax_inclusive: bool
    tax_amount: Decimal
    total: Decimal


LINE_VALUES = tuple(
    "coupon__code" if name == "coupon_code" else name for name in LineValues._fields
)


def _line_payload(line: InvoiceLine | LineValues, currency: str) -> dict[str, Any]:
    if isinstance(line, LineValues):
        coupon = line.coupon_code
    else:
        coupon = line.coupon.code if line.coupon_id is not None else None  # type: ignore[union-attr]
    return {
        "id": line.pk,
        "position": line.position,
        "kind": line.kind,
        "description": line.description,
        "subscription_id": line.subscription_id,
        "plan_id": line.plan_id,
        "price_id": line.price_id,
        "meter_id": line.meter_id,
        "period_start": iso_date(line.period_start),
        "period_end": iso_date(line.period_end),
        "proration_days": line.proration_days,
        "period_days": line.period_days,
        "quantity": _quantity(line.quantity),
        "unit_amount": unit_amount(line.unit_amount, currency),
        "amount": amount(line.amount, currency),
        "coupon": coupon,
        "discount_amount": amount(line.discount_amount, currency),
        "tax_percent": f"{Decimal(line.tax_percent).quantize(_TAX_PERCENT_PLACES):f}",
        "tax_inclusive": line.tax_inclusive,
        "tax_amount": amount(line.tax_amount, currency),
        "total": amount(line.total, currency),
    }


def invoice_payload(
    invoice: Invoice, lines: Sequence[InvoiceLine | LineValues] | None = None
) -> dict[str, Any]:
    """`lines`: the invoice's lines when the caller holds them (a batch), else they are read."""
    currency = invoice.currency
    return {
        "id": invoice.pk,
        "number": invoice.number,
        "customer": invoice.customer_id,
        "currency": currency,
        "status": invoice.status,
        "billing_reason": invoice.billing_reason,
        "subtotal": amount(invoice.subtotal, currency),
        "discount_total": amount(invoice.discount_total, currency),
        "tax_total": amount(invoice.tax_total, currency),
        "total": amount(invoice.total, currency),
        "credit_applied": amount(invoice.credit_applied, currency),
        "credited_total": amount(invoice.credited_total, currency),
        "amount_paid": amount(invoice.amount_paid, currency),
        "amount_due": amount(invoice.amount_due, currency),
        "issued_on": iso_date(invoice.issued_on),
        "due_on": iso_date(invoice.due_on),
        "memo": invoice.memo,
        "created_at": iso_datetime(invoice.created_at),
        "finalized_at": iso_datetime(invoice.finalized_at),
        "paid_at": iso_datetime(invoice.paid_at),
        "voided_at": iso_datetime(invoice.voided_at),
        "marked_uncollectible_at": iso_datetime(invoice.marked_uncollectible_at),
        "lines": [
            _line_payload(line, currency)
            for line in (invoice.lines.all() if lines is None else lines)
        ],
    }


def credit_note_payload(credit_note: CreditNote) -> dict[str, Any]:
    currency = credit_note.currency
    return {
        "id": credit_note.pk,
        "number": credit_note.number,
        "invoice": credit_note.invoice_id,
        "customer": credit_note.customer_id,
        "currency": currency,
        "status": credit_note.status,
        "reason": credit_note.reason,
        "outcome": credit_note.outcome,
        "subtotal": amount(credit_note.subtotal, currency),
        "tax_amount": amount(credit_note.tax_amount, currency),
        "total": amount(credit_note.total, currency),
        "memo": credit_note.memo,
        "issued_on": iso_date(credit_note.issued_on),
        "created_at": iso_datetime(credit_note.created_at),
        "lines": [
            {
                "id": line.pk,
                "invoice_line": line.invoice_line_id,
                "description": line.description,
                "amount": amount(line.amount, currency),
                "tax_amount": amount(line.tax_amount, currency),
                "total": amount(line.total, currency),
            }
            for line in credit_note.lines.all()
        ],
    }


def payment_payload(payment: Payment) -> dict[str, Any]:
    currency = payment.currency
    return {
        "id": payment.pk,
        "customer": payment.customer_id,
        "invoice": payment.invoice_id,
        "amount": amount(payment.amount, currency),
        "amount_refunded": amount(payment.amount_refunded, currency),
        "currency": currency,
        "method": payment.method,
        "gateway": payment.gateway,
        "gateway_reference": payment.gateway_reference,
        "reference": payment.reference,
        "attempt": payment.attempt_id,
        "status": payment.status,
        "received_on": iso_date(payment.received_on),
        "created_at": iso_datetime(payment.created_at),
    }


def payment_attempt_payload(
    attempt: PaymentAttempt, *, payment_id: int | None = None
) -> dict[str, Any]:
    """A payment attempt; `payment` is the payment a success made (none for a failure)."""
    return {
        "id": attempt.pk,
        "invoice": attempt.invoice_id,
        "customer": attempt.customer_id,
        "attempt_number": attempt.attempt_number,
        "idempotency_key": attempt.idempotency_key,
        "trigger": attempt.trigger,
        "status": attempt.status,
        "amount": amount(attempt.amount, attempt.currency),
        "currency": attempt.currency,
        "payment_method": attempt.payment_method_id,
        "gateway": attempt.gateway,
        "gateway_reference": attempt.gateway_reference,
        "decline_code": attempt.decline_code,
        "decline_kind": attempt.decline_kind,
        "error_message": attempt.error_message,
        "payment": payment_id,
        "created_at": iso_datetime(attempt.created_at),
        "resolved_at": iso_datetime(attempt.resolved_at),
    }


def refund_payload(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.pk,
        "payment": refund.payment_id,
        "customer": refund.customer_id,
        "amount": amount(refund.amount, refund.currency),
        "currency": refund.currency,
        "reason": refund.reason,
        "memo": refund.memo,
        "credit_note": refund.credit_note_id,
        "origin": refund.origin,
        "status": refund.status,
        "gateway_reference": refund.gateway_reference,
        "error_message": refund.error_message,
        "created_at": iso_datetime(refund.created_at),
        "resolved_at": iso_datetime(refund.resolved_at),
    }
