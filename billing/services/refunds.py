"""Refunds: money paid back against a payment, in full or in part, never beyond what is left.

The same three steps as a charge: the refund is claimed in a short transaction (the payment
locked, its refundable amount taken at once, so two refunds can never together exceed it), the
gateway is called outside any transaction with the refund's idempotency key, and the outcome
is recorded in another transaction. Offline payments (bank transfer, cheque) are refunded
offline: the refund is recorded as paid at once.

A refund gives back invoice lines (RefundLine, in proportion to what each line has left, or
the lines of the credit note it executes) and is booked in the ledger when it succeeds: each
line reduces its recognition schedule proportionally against cash. A failed refund gives its
amount back to the payment; when it executed a credit note, the credit note's value goes to
the customer's credit balance instead, so the customer is never left with nothing.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from billing.gateways import get_gateway
from billing.gateways.base import FAILED, SUCCEEDED, RefundResult
from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalanceTransaction,
    Invoice,
    Payment,
    Refund,
    RefundLine,
)
from billing.selectors import invoice_line_creditable
from billing.services.bookings import book_refund
from billing.services.invoices import (
    _allocate,
    _choice,
    _clean_memo,
    _credit_spread,
    _decimal,
    customer_balance_adjust,
)
from billing.webhook_payloads import refund_payload
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError, ValidationError
from core.money import is_rounded, round_money
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import event_emit

ZERO = Decimal("0")
REFUNDABLE = (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED)


def refund_create(
    *,
    payment: Payment,
    actor: Actor,
    amount: Decimal | None = None,
    reason: str = Refund.Reason.REQUESTED_BY_CUSTOMER,
    memo: str = "",
) -> Refund:
    """Refund `amount` of `payment` (all that is left when None) and return the refund.

    The refund gives back the payment's invoice lines in proportion to what each has left; at
    most what the payment has left (`refund_exceeds_payment`) and what its invoice has left
    to give back (`refund_exceeds_invoice`). A disputed payment is not refunded.
    """
    reason = _choice(reason, Refund.Reason.values, param="reason", code="invalid_reason")
    memo = _clean_memo(memo, max_length=300)
    with transaction.atomic(durable=True):
        locked = _lock_payment(payment)
        if locked.status not in REFUNDABLE:
            raise ConflictError(
                f"Payment #{locked.pk} is {locked.status}; it cannot be refunded.",
                code="payment_not_refundable",
            )
        if amount is None:
            amount = locked.refundable
        amount = _decimal(amount, param="amount", code="invalid_amount")
        if amount <= 0 or not is_rounded(amount, locked.currency):
            raise ValidationError(
                f"A refund is more than 0, with at most the decimals of {locked.currency}.",
                code="invalid_amount",
                param="amount",
            )
        if amount > locked.refundable:
            raise ValidationError(
                f"Only {locked.refundable} {locked.currency} of payment #{locked.pk} is left to "
                "refund.",
                code="refund_exceeds_payment",
                param="amount",
            )
        lines: list[RefundLine] = []
        if locked.invoice is not None:
            invoice = locked.invoice
            creditable = invoice_line_creditable(invoice=invoice)
            left = sum((c.total for c in creditable.values()), ZERO)
            if amount > left:
                raise ValidationError(
                    f"Invoice {invoice} has only {left} {locked.currency} left to give back "
                    "(credit notes and refunds took the rest).",
                    code="refund_exceeds_invoice",
                    param="amount",
                )
            invoice_lines = {line.pk: line for line in invoice.lines.all()}
            lines = [
                RefundLine(
                    invoice_line=share.invoice_line,
                    amount=share.amount,
                    tax_amount=share.tax_amount,
                    total=share.total,
                )
                for share in _credit_spread(invoice, amount, creditable, invoice_lines)
            ]
        refund = _claim(locked, amount=amount, reason=reason, memo=memo, lines=lines, actor=actor)
    return refund_execute(refund=refund, actor=actor)


def refunds_create_for_credit_note(
    *, credit_note: CreditNote, invoice: Invoice, actor: Actor
) -> list[Refund]:
    """Refund the invoice's payments for a credit note's total (inside its transaction).

    Newest payments first; each refund takes its share of the credit note's lines. The gateway
    is called once the transaction commits.
    """
    payments = list(
        Payment.objects.select_for_update()
        .filter(invoice=invoice, status__in=REFUNDABLE)
        .order_by("-id")
    )
    available = sum((p.refundable for p in payments), ZERO)
    total = credit_note.total
    if total > available:
        raise ValidationError(
            f"Only {available} {credit_note.currency} paid on invoice {invoice} is left to "
            "refund; credit the balance or reduce the amount due instead.",
            code="refund_exceeds_payments",
            param="outcome",
        )
    shares: list[tuple[Payment, Decimal]] = []
    left = total
    for payment in payments:
        if left <= 0:
            break
        take = min(payment.refundable, left)
        if take > 0:
            shares.append((payment, take))
            left -= take
    note_lines = list(CreditNoteLine.objects.filter(credit_note=credit_note).order_by("id"))
    remaining = {line.pk: (line.total, line.tax_amount) for line in note_lines}
    refunds = []
    for index, (payment, share) in enumerate(shares):
        last = index == len(shares) - 1
        refund_lines = _note_shares(note_lines, remaining, share, last, credit_note.currency)
        refunds.append(
            _claim(
                payment,
                amount=share,
                reason=Refund.Reason.CREDIT_NOTE,
                memo=f"Credit note {credit_note.number}",
                lines=refund_lines,
                actor=actor,
                credit_note=credit_note,
            )
        )
    ids = [refund.pk for refund in refunds]
    transaction.on_commit(lambda: _execute_all(ids, actor), robust=True)
    return refunds


def _note_shares(
    note_lines: list[CreditNoteLine],
    remaining: dict[int, tuple[Decimal, Decimal]],
    share: Decimal,
    last: bool,
    currency: str,
) -> list[RefundLine]:
    """This refund's part of each credit-note line; the last refund takes exactly what is left."""
    weights = [remaining[line.pk][0] for line in note_lines]
    parts = weights if last else _allocate(share, weights, currency)
    refund_lines = []
    for line, part in zip(note_lines, parts, strict=True):
        if part <= 0:
            continue
        total_left, tax_left = remaining[line.pk]
        tax = (
            tax_left
            if part == total_left
            else min(round_money(tax_left * part / total_left, currency), tax_left)
        )
        remaining[line.pk] = (total_left - part, tax_left - tax)
        invoice_line = line.invoice_line
        inclusive = invoice_line is not None and invoice_line.tax_inclusive
        assert line.invoice_line_id is not None  # noqa: S101 - credit notes credit invoice lines
        refund_lines.append(
            RefundLine(
                invoice_line_id=line.invoice_line_id,
                amount=part if inclusive else part - tax,
                tax_amount=tax,
                total=part,
            )
        )
    return refund_lines


def _claim(
    payment: Payment,
    *,
    amount: Decimal,
    reason: str,
    memo: str,
    lines: list[RefundLine],
    actor: Actor,
    credit_note: CreditNote | None = None,
    origin: str = Refund.Origin.PLATFORM,
) -> Refund:
    """Create the pending refund and take its amount off the payment (payment locked)."""
    number = Refund.objects.filter(payment=payment).count() + 1
    refund = Refund.objects.create(
        payment=payment,
        customer_id=payment.customer_id,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        memo=memo,
        credit_note=credit_note,
        origin=origin,
        idempotency_key=f"payment-{payment.pk}-refund-{number}",
        created_at=clock.now(),
    )
    for line in lines:
        line.refund = refund
    RefundLine.objects.bulk_create(lines)
    before = audit_snapshot(payment)
    payment.amount_refunded += amount
    _set_payment_status(payment)
    payment.save(update_fields=["amount_refunded", "status"])
    audit_record(
        actor=actor,
        action="refund.create",
        instance=refund,
        after={**audit_snapshot(refund), "lines": [audit_snapshot(line) for line in lines]},
    )
    audit_record(
        actor=actor,
        action="payment.refund",
        instance=payment,
        before=before,
        after=audit_snapshot(payment),
    )
    if not payment.gateway:
        # An offline payment is refunded offline (by bank transfer or cheque): it is done.
        _record(refund, RefundResult(SUCCEEDED), actor=actor)
    event_emit(
        type=EventType.REFUND_CREATED,
        payload=refund_payload(refund),
        customer_id=refund.customer_id,
    )
    return refund


def _execute_all(ids: list[int], actor: Actor) -> None:
    for refund in Refund.objects.filter(pk__in=ids).order_by("id"):
        refund_execute(refund=refund, actor=actor)


def refund_execute(*, refund: Refund, actor: Actor) -> Refund:
    """Send a pending refund to its gateway (outside any transaction) and record the outcome.

    Also the retry of a refund whose outcome was unknown: the gateway is asked first, and the
    refund is sent again, with the same idempotency key, only if it never arrived.
    """
    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    if refund.status not in (Refund.Status.PENDING, Refund.Status.UNKNOWN):
        return refund
    payment = refund.payment
    gateway = get_gateway(payment.gateway)
    result: RefundResult | None = None
    if refund.status == Refund.Status.UNKNOWN:
        result = gateway.lookup_refund(
            charge_reference=payment.gateway_reference, idempotency_key=refund.idempotency_key
        )
    if result is None:
        result = gateway.refund(
            charge_reference=payment.gateway_reference,
            amount=refund.amount,
            currency=refund.currency,
            idempotency_key=refund.idempotency_key,
        )
    with transaction.atomic():
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        _record(locked, result, actor=actor)
    return Refund.objects.get(pk=refund.pk)


def _record(refund: Refund, result: RefundResult, *, actor: Actor) -> None:
    """Record a gateway's answer on a pending (or unknown) refund; books a success."""
    if refund.status not in (Refund.Status.PENDING, Refund.Status.UNKNOWN):
        return
    before = audit_snapshot(refund)
    now = clock.now()
    refund.gateway_reference = result.reference or refund.gateway_reference
    if result.status == SUCCEEDED:
        refund.status = Refund.Status.SUCCEEDED
        refund.resolved_at = now
        book_refund(refund=refund, effective_date=clock.today())
    elif result.status == FAILED:
        refund.status = Refund.Status.FAILED
        refund.error_message = result.message[:500]
        refund.resolved_at = now
        _give_back(refund, actor=actor)
    else:
        refund.status = Refund.Status.UNKNOWN
        refund.error_message = result.message[:500]
    refund.save()
    audit_record(
        actor=actor,
        action=f"refund.{refund.status}",
        instance=refund,
        before=before,
        after=audit_snapshot(refund),
    )


def _give_back(refund: Refund, *, actor: Actor) -> None:
    payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
    before = audit_snapshot(payment)
    payment.amount_refunded -= refund.amount
    _set_payment_status(payment)
    payment.save(update_fields=["amount_refunded", "status"])
    audit_record(
        actor=actor,
        action="payment.refund_failed",
        instance=payment,
        before=before,
        after=audit_snapshot(payment),
    )
    if refund.credit_note_id is not None:
        customer_balance_adjust(
            customer=payment.customer,
            currency=refund.currency,
            amount=refund.amount,
            kind=CustomerBalanceTransaction.Kind.CREDIT_NOTE,
            actor=actor,
            memo=f"Refund of credit note {refund.memo.removeprefix('Credit note ')} failed",
            invoice=payment.invoice,
            credit_note=refund.credit_note,
        )
        book_refund(refund=refund, effective_date=clock.today(), to_balance=True)


def _set_payment_status(payment: Payment) -> None:
    if payment.status == Payment.Status.DISPUTED:
        return
    if payment.amount_refunded == 0:
        payment.status = Payment.Status.SUCCEEDED
    elif payment.amount_refunded < payment.amount:
        payment.status = Payment.Status.PARTIALLY_REFUNDED
    else:
        payment.status = Payment.Status.REFUNDED


def _lock_payment(payment: Payment) -> Payment:
    # The invoice first, then the payment: the order every payment service locks them in.
    if payment.invoice_id is not None:
        Invoice.objects.select_for_update(of=("self",)).filter(pk=payment.invoice_id).first()
    try:
        return (
            Payment.objects.select_for_update(of=("self",))
            .select_related("invoice", "customer")
            .get(pk=payment.pk)
        )
    except Payment.DoesNotExist:
        raise NotFoundError(
            f"No such payment: {payment.pk}.", code="payment_not_found", param="payment"
        ) from None


def refund_record_from_gateway(
    *, payment: Payment, amount: Decimal, gateway_reference: str, actor: Actor
) -> Refund:
    """A refund made at the gateway itself (Stripe's dashboard), recorded and booked here.

    Runs inside the caller's transaction (the webhook's). Lines are given back in proportion
    to what each has left; never more than the payment has left.
    """
    locked = _lock_payment(payment)
    amount = min(amount, locked.refundable)
    if amount <= 0:
        raise ConflictError(
            f"Payment #{locked.pk} has nothing left to refund.", code="payment_not_refundable"
        )
    lines: list[RefundLine] = []
    if locked.invoice is not None:
        creditable = invoice_line_creditable(invoice=locked.invoice)
        left = sum((c.total for c in creditable.values()), ZERO)
        invoice_lines = {line.pk: line for line in locked.invoice.lines.all()}
        lines = [
            RefundLine(
                invoice_line=share.invoice_line,
                amount=share.amount,
                tax_amount=share.tax_amount,
                total=share.total,
            )
            for share in _credit_spread(
                locked.invoice, min(amount, left), creditable, invoice_lines
            )
        ]
    refund = _claim(
        locked,
        amount=amount,
        reason=Refund.Reason.OTHER,
        memo="Refunded at the gateway",
        lines=lines,
        actor=actor,
        origin=Refund.Origin.GATEWAY,
    )
    _record(refund, RefundResult(SUCCEEDED, reference=gateway_reference), actor=actor)
    return refund
