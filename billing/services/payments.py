"""Charging invoices through the gateways, and payments recorded by staff.

A charge happens in three steps, so that the gateway is never called inside a database
transaction and a lost answer can never lead to a second charge:

1. claim: in a short transaction, with the invoice locked, a PaymentAttempt is created with
   the idempotency key "invoice-{id}-attempt-{n}" (or an attempt whose outcome is unknown is
   taken up again, with its key). At most one attempt per invoice is pending or unknown (a
   partial unique index says so), and nothing may change what is due meanwhile;
2. the gateway is called, outside any transaction, with that key;
3. record: in another transaction the outcome is written. Succeeded: a Payment, the invoice's
   amount paid and due, the ledger. Declined: the decline code and its kind (soft: retry
   later; hard: not before the payment method changes). Unknown: reconciled later by
   `payment_attempt_reconcile`, which asks the gateway about the key and sends the same key
   again only if the gateway never saw it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from billing.gateways import get_gateway
from billing.gateways.base import DECLINED, SUCCEEDED, ChargeResult
from billing.listeners import payment_outcome_recorded
from billing.models import (
    GatewayCustomer,
    Invoice,
    Payment,
    PaymentAttempt,
    PaymentMethod,
)
from billing.services.bookings import book_payment
from billing.services.invoices import (
    _choice,
    _decimal,
    _lock_invoice,
    _refuse_while_charging,
    _set_amount_due,
)
from billing.webhook_payloads import invoice_payload, payment_attempt_payload, payment_payload
from core import clock
from core.actors import Actor
from core.errors import ConflictError, ValidationError
from core.money import is_rounded
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from customers.models import Customer

AUTOCHARGE = Actor.system("autocharge")
OPEN_ATTEMPT = (PaymentAttempt.Status.PENDING, PaymentAttempt.Status.UNKNOWN)
OFFLINE_METHODS = (Payment.Method.BANK_TRANSFER, Payment.Method.CHEQUE, Payment.Method.OTHER)


def invoice_autocharge(*, invoice_id: int, actor: Actor = AUTOCHARGE) -> PaymentAttempt | None:
    """Charge an open invoice of an autocharge customer to their default payment method.

    Does nothing (returns None) when there is nothing to do: the invoice is not open or
    nothing is due, the customer pays by invoice or has no default method, a charge is already
    in flight, or the default method was last declined hard.
    """
    invoice = Invoice.objects.select_related("customer").filter(pk=invoice_id).first()
    if (
        invoice is None
        or invoice.status != Invoice.Status.OPEN
        or invoice.amount_due <= 0
        or not invoice.customer.autocharge
    ):
        return None
    method = default_payment_method(customer=invoice.customer)
    if method is None or _retry_blocked(invoice, method):
        return None
    if PaymentAttempt.objects.filter(
        invoice=invoice, status=PaymentAttempt.Status.PENDING
    ).exists():
        return None
    return _charge(invoice, method, trigger=PaymentAttempt.Trigger.AUTOCHARGE, actor=actor)


def invoice_pay_now(
    *, invoice: Invoice, actor: Actor, payment_method: PaymentMethod | None = None
) -> PaymentAttempt:
    """Charge an open invoice now, to `payment_method` or the customer's default one.

    Refused: `invoice_not_open`, `nothing_due`, `no_payment_method`, `payment_in_progress`
    (another charge is in flight), `payment_retry_blocked` (this method was last declined
    hard: only another method may be tried).
    """
    if payment_method is None:
        payment_method = default_payment_method(customer=invoice.customer)
        if payment_method is None:
            raise ValidationError(
                "The customer has no default payment method: give one.",
                code="no_payment_method",
                param="payment_method",
            )
    elif payment_method.customer_id != invoice.customer_id:
        raise ValidationError(
            "This payment method belongs to another customer.",
            code="payment_method_not_found",
            param="payment_method",
        )
    return _charge(invoice, payment_method, trigger=PaymentAttempt.Trigger.PAY_NOW, actor=actor)


def payment_method_updated(
    *, customer: Customer, actor: Actor = AUTOCHARGE
) -> list[PaymentAttempt]:
    """The customer's payment method changed: retry their open invoices now (oldest first).

    Open invoices of autocharge customers only; each is charged by `invoice_autocharge`.
    """
    attempts = []
    open_invoices = Invoice.objects.filter(
        customer=customer, status=Invoice.Status.OPEN, amount_due__gt=0
    ).order_by("due_on", "id")
    for invoice_id in open_invoices.values_list("id", flat=True):
        attempt = invoice_autocharge(invoice_id=invoice_id, actor=actor)
        if attempt is not None:
            attempts.append(attempt)
    return attempts


def payment_attempt_reconcile(*, attempt: PaymentAttempt, actor: Actor) -> PaymentAttempt:
    """Settle an attempt whose outcome is unknown: ask the gateway what became of its key.

    Found: the outcome is recorded (a charge that went through becomes a payment). Not found:
    the gateway never made the charge, so it is sent again with the SAME key (which a real
    gateway would answer from its idempotency cache if the first call arrives after all).
    Either way, the invoice is charged at most once.
    """
    if attempt.status != PaymentAttempt.Status.UNKNOWN:
        raise ConflictError(
            f"Attempt {attempt} is {attempt.status}; only an unknown outcome is reconciled.",
            code="attempt_not_unknown",
        )
    method = attempt.payment_method
    gateway = get_gateway(attempt.gateway)
    customer_reference = _gateway_customer_reference(attempt.customer, attempt.gateway)
    result = gateway.lookup_charge(
        idempotency_key=attempt.idempotency_key, customer_reference=customer_reference
    )
    if result is not None:
        return _record(attempt.pk, result, actor=actor)
    invoice = attempt.invoice
    return _charge(invoice, method, trigger=PaymentAttempt.Trigger.RETRY, actor=actor)


def payment_retry_blocked(*, invoice: Invoice, payment_method: PaymentMethod) -> bool:
    """Whether `payment_method` was last declined hard (then only another may be tried for
    `invoice` or any other: a hard decline is not retried until the payment method changes)."""
    return _retry_blocked(invoice, payment_method)


def payment_record_offline(
    *,
    invoice: Invoice,
    amount: Decimal,
    method: str,
    reference: str,
    received_on: date,
    actor: Actor,
) -> Payment:
    """Record money received outside the gateways (bank transfer, cheque...), by staff.

    Part of what is due may be paid; never more (`payment_exceeds_amount_due`).
    """
    method = _choice(method, list(OFFLINE_METHODS), param="method", code="invalid_method")
    reference = (reference or "").strip()
    if len(reference) > 200:
        raise ValidationError(
            "A reference has 200 characters at most.", code="invalid_reference", param="reference"
        )
    if received_on > clock.today():
        raise ValidationError(
            "Money cannot be received in the future.", code="invalid_date", param="received_on"
        )
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        amount = _decimal(amount, param="amount", code="invalid_amount")
        if amount <= 0 or not is_rounded(amount, locked.currency):
            raise ValidationError(
                f"A payment is more than 0, with at most the decimals of {locked.currency}.",
                code="invalid_amount",
                param="amount",
            )
        _require_open(locked)
        _refuse_while_charging(locked)
        if amount > locked.amount_due:
            raise ValidationError(
                f"Only {locked.amount_due} {locked.currency} is due on invoice {locked}.",
                code="payment_exceeds_amount_due",
                param="amount",
            )
        payment = _pay(
            locked,
            amount=amount,
            method=method,
            received_on=received_on,
            reference=reference,
            actor=actor,
        )
        payment_outcome_recorded(invoice_id=locked.pk)
    return payment


def default_payment_method(*, customer: Customer) -> PaymentMethod | None:
    return PaymentMethod.objects.filter(
        customer=customer, is_default=True, status=PaymentMethod.Status.ACTIVE
    ).first()


# --- the three steps ----------------------------------------------------------------------------


def _charge(
    invoice: Invoice, method: PaymentMethod, *, trigger: str, actor: Actor
) -> PaymentAttempt:
    attempt = _claim(invoice, method, trigger=trigger, actor=actor)
    gateway = get_gateway(attempt.gateway)
    result = gateway.charge(
        amount=attempt.amount,
        currency=attempt.currency,
        customer_reference=_gateway_customer_reference(attempt.customer, attempt.gateway),
        payment_method_reference=attempt.payment_method.reference,
        idempotency_key=attempt.idempotency_key,
        description=f"Invoice {invoice.number}",
    )
    return _record(attempt.pk, result, actor=actor)


def _claim(
    invoice: Invoice, method: PaymentMethod, *, trigger: str, actor: Actor
) -> PaymentAttempt:
    # durable: this is the outermost transaction. Charges are never claimed inside a caller's
    # transaction, whose commit would come after the gateway call.
    with transaction.atomic(durable=True):
        locked = _lock_invoice(invoice)
        _require_open(locked)
        if locked.amount_due <= 0:
            raise ConflictError(f"Nothing is due on invoice {locked}.", code="nothing_due")
        if method.status != PaymentMethod.Status.ACTIVE:
            raise ValidationError(
                "This payment method is detached.",
                code="payment_method_detached",
                param="payment_method",
            )
        open_attempt = (
            PaymentAttempt.objects.select_for_update()
            .filter(invoice=locked, status__in=OPEN_ATTEMPT)
            .first()
        )
        if open_attempt is not None and open_attempt.status == PaymentAttempt.Status.PENDING:
            raise ConflictError(
                f"A payment of invoice {locked} is in progress.", code="payment_in_progress"
            )
        if open_attempt is not None:
            # Outcome unknown: this is its retry, with the same key, card and amount, so the
            # gateway answers from its idempotency record if the first call got through.
            before = audit_snapshot(open_attempt)
            open_attempt.status = PaymentAttempt.Status.PENDING
            open_attempt.save(update_fields=["status"])
            audit_record(
                actor=actor,
                action="payment_attempt.retry",
                instance=open_attempt,
                before=before,
                after=audit_snapshot(open_attempt),
            )
            return PaymentAttempt.objects.select_related(
                "invoice", "customer", "payment_method"
            ).get(pk=open_attempt.pk)
        if _retry_blocked(locked, method):
            raise ConflictError(
                "This payment method was declined hard on this invoice: it is not tried again "
                "until the payment method changes.",
                code="payment_retry_blocked",
                param="payment_method",
            )
        number = (
            PaymentAttempt.objects.filter(invoice=locked).aggregate(n=Max("attempt_number"))["n"]
            or 0
        ) + 1
        attempt = PaymentAttempt.objects.create(
            invoice=locked,
            customer_id=locked.customer_id,
            attempt_number=number,
            idempotency_key=f"invoice-{locked.pk}-attempt-{number}",
            trigger=trigger,
            amount=locked.amount_due,
            currency=locked.currency,
            payment_method=method,
            gateway=method.gateway,
            created_at=clock.now(),
        )
        audit_record(
            actor=actor,
            action="payment_attempt.create",
            instance=attempt,
            after=audit_snapshot(attempt),
        )
    return PaymentAttempt.objects.select_related("invoice", "customer", "payment_method").get(
        pk=attempt.pk
    )


def _record(attempt_id: int, result: ChargeResult, *, actor: Actor) -> PaymentAttempt:
    with transaction.atomic():
        attempt = PaymentAttempt.objects.select_related("invoice").get(pk=attempt_id)
        invoice = _lock_invoice(attempt.invoice)
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt_id)
        payment_attempt_record_outcome(attempt=attempt, invoice=invoice, result=result, actor=actor)
    return PaymentAttempt.objects.select_related("invoice", "payment_method").get(pk=attempt_id)


def payment_attempt_record_outcome(
    *, attempt: PaymentAttempt, invoice: Invoice, result: ChargeResult, actor: Actor
) -> None:
    """Write a gateway's answer on an attempt still pending or unknown (both locked by the
    caller, the invoice first). An attempt already settled is left alone: a webhook and the
    caller may both report the same outcome."""
    if attempt.status not in OPEN_ATTEMPT:
        return
    before = audit_snapshot(attempt)
    now = clock.now()
    attempt.gateway_reference = result.reference or attempt.gateway_reference
    if result.status == SUCCEEDED:
        attempt.status = PaymentAttempt.Status.SUCCEEDED
        attempt.decline_code = attempt.decline_kind = attempt.error_message = ""
        attempt.resolved_at = now
    elif result.status == DECLINED:
        attempt.status = PaymentAttempt.Status.DECLINED
        attempt.decline_code = result.decline_code
        attempt.decline_kind = result.decline_kind
        attempt.error_message = result.message[:500]
        attempt.resolved_at = now
    else:
        attempt.status = PaymentAttempt.Status.UNKNOWN
        attempt.error_message = result.message[:500]
    attempt.save()
    audit_record(
        actor=actor,
        action=f"payment_attempt.{attempt.status}",
        instance=attempt,
        before=before,
        after=audit_snapshot(attempt),
    )
    if attempt.status == PaymentAttempt.Status.DECLINED:
        event_emit_bulk(
            events=[
                EventSpec(
                    type=EventType.PAYMENT_FAILED,
                    payload=payment_attempt_payload(attempt),
                    customer_id=attempt.customer_id,
                ),
                EventSpec(
                    type=EventType.INVOICE_PAYMENT_FAILED,
                    payload=invoice_payload(invoice),
                    customer_id=invoice.customer_id,
                ),
            ]
        )
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        _pay(
            invoice,
            amount=attempt.amount,
            method=Payment.Method.CARD,
            received_on=clock.today(),
            actor=actor,
            attempt=attempt,
        )
    payment_outcome_recorded(invoice_id=invoice.pk)


def _pay(
    invoice: Invoice,
    *,
    amount: Decimal,
    method: str,
    received_on: date,
    actor: Actor,
    reference: str = "",
    attempt: PaymentAttempt | None = None,
) -> Payment:
    """The payment, the invoice's amounts and the ledger, with the invoice locked."""
    payment = Payment.objects.create(
        customer_id=invoice.customer_id,
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        method=method,
        gateway=attempt.gateway if attempt else "",
        gateway_reference=attempt.gateway_reference if attempt else "",
        reference=reference,
        attempt=attempt,
        received_on=received_on,
        created_at=clock.now(),
    )
    before = audit_snapshot(invoice)
    was_paid = invoice.status == Invoice.Status.PAID
    invoice.amount_paid += amount
    # Claims freeze what is due while a charge is in flight, so a charge never pays more than
    # is due (the database refuses a negative amount due besides).
    _set_amount_due(invoice, now=clock.now())
    invoice.save()
    book_payment(payment=payment)
    audit_record(
        actor=actor, action="payment.create", instance=payment, after=audit_snapshot(payment)
    )
    audit_record(
        actor=actor,
        action="invoice.pay",
        instance=invoice,
        before=before,
        after=audit_snapshot(invoice),
    )
    events = [
        EventSpec(
            type=EventType.PAYMENT_SUCCEEDED,
            payload=payment_payload(payment),
            customer_id=payment.customer_id,
        )
    ]
    if invoice.status == Invoice.Status.PAID and not was_paid:
        events.append(
            EventSpec(
                type=EventType.INVOICE_PAID,
                payload=invoice_payload(invoice),
                customer_id=invoice.customer_id,
            )
        )
    event_emit_bulk(events=events)
    return payment


# --- helpers ------------------------------------------------------------------------------------


def _require_open(invoice: Invoice) -> None:
    if invoice.status != Invoice.Status.OPEN:
        raise ConflictError(
            f"Invoice {invoice} is {invoice.status}; only an open invoice is paid.",
            code="invoice_not_open",
        )


def _retry_blocked(invoice: Invoice, method: PaymentMethod) -> bool:
    # Per payment method, whatever the invoice: card networks frown on charging a card again
    # after a hard decline (stolen, closed...), and nothing but another method can help.
    latest = (
        PaymentAttempt.objects.filter(payment_method=method)
        .exclude(status__in=OPEN_ATTEMPT)
        .order_by("-attempt_number")
        .first()
    )
    return (
        latest is not None
        and latest.status == PaymentAttempt.Status.DECLINED
        and latest.decline_kind == PaymentAttempt.DeclineKind.HARD
    )


def _gateway_customer_reference(customer: Customer, gateway: str) -> str:
    reference = (
        GatewayCustomer.objects.filter(customer=customer, gateway=gateway)
        .values_list("reference", flat=True)
        .first()
    )
    if reference is None:
        raise ConflictError(
            f"Customer {customer.pk} has no {gateway} record.", code="gateway_customer_missing"
        )
    return reference
