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

Autocharge takes a batch through the same three steps (`invoices_autocharge`: a billing run's
chunk of renewals; one invoice is a batch of one): one claim transaction for the batch, one
`charge_many` call per gateway, one transaction recording the successes (declines and unknown
outcomes, rare, are recorded one by one). The outcome is exactly that of charging each invoice
in turn: where one charge's outcome decides another's (the same payment method, which a hard
decline blocks), the second waits for the next round of the batch.

A worker that dies between the steps leaves an attempt pending (claimed, maybe charged, never
recorded), or an invoice never attempted (it died between the finalizing commit and the
autocharge after it). `payment_attempts_sweep` (every 10 minutes) settles both.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from billing.gateways import get_gateway
from billing.gateways.base import DECLINED, SUCCEEDED, ChargeRequest, ChargeResult
from billing.listeners import payment_outcome_recorded, payment_outcomes_recorded
from billing.models import (
    GatewayCustomer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAttempt,
    PaymentMethod,
)
from billing.services.bookings import book_payment, book_payments
from billing.services.invoices import (
    _choice,
    _decimal,
    _lock_invoice,
    _refuse_while_charging,
    _set_amount_due,
)
from billing.webhook_payloads import (
    LINE_VALUES,
    LineValues,
    invoice_payload,
    payment_attempt_payload,
    payment_payload,
)
from core import clock
from core.actors import Actor
from core.bulk import insert_rows, update_rows
from core.errors import ConflictError, ValidationError
from core.money import is_rounded
from core.queries import any_of
from core.services import AuditSpec, audit_record, audit_record_bulk, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from customers.models import Customer

logger = logging.getLogger(__name__)

AUTOCHARGE = Actor.system("autocharge")
SWEEPER = Actor.system("payment sweeper")
OPEN_ATTEMPT = (PaymentAttempt.Status.PENDING, PaymentAttempt.Status.UNKNOWN)
OFFLINE_METHODS = (Payment.Method.BANK_TRANSFER, Payment.Method.CHEQUE, Payment.Method.OTHER)


def invoice_autocharge(*, invoice_id: int, actor: Actor = AUTOCHARGE) -> PaymentAttempt | None:
    """`invoices_autocharge` of one invoice: its attempt, or None when there was nothing to do."""
    attempts = invoices_autocharge(invoice_ids=[invoice_id], actor=actor)
    return attempts[0] if attempts else None


def invoices_autocharge(
    *, invoice_ids: Sequence[int], actor: Actor = AUTOCHARGE
) -> list[PaymentAttempt]:
    """Charge open invoices of autocharge customers to their default payment methods, exactly
    as charging each in turn (in the order given) would, with a constant number of queries for
    the batch. Returns the attempts made, in that order.

    An invoice is skipped (nothing to do) when it is not open or nothing is due, the customer
    pays by invoice or has no default method, a charge of it is in flight, or the default
    method was last declined hard. An attempt whose outcome is unknown is retried, with its
    key. Called outside any transaction (the claim is durable: the gateway is called after it
    commits).
    """
    made = invoices_autocharge_ids(invoice_ids=invoice_ids, actor=actor)
    if not made:
        return []
    attempts = {
        attempt.pk: attempt
        for attempt in PaymentAttempt.objects.select_related("invoice", "payment_method").filter(
            any_of("pk", made)
        )
    }
    return [attempts[attempt_id] for attempt_id in made]


def invoices_autocharge_ids(*, invoice_ids: Sequence[int], actor: Actor = AUTOCHARGE) -> list[int]:
    """`invoices_autocharge`, returning only the ids of the attempts made (in the same order):
    for callers that do not look at them (the billing run), which would pay for reading a
    whole batch of attempts back."""
    queue = list(enumerate(invoice_ids))
    made: list[tuple[int, int]] = []  # (position in invoice_ids, attempt id)
    while queue:
        claims, queue = _claim_many(queue, actor=actor)
        try:
            results = _charge_many(claims)
        except Exception:
            # Some charges may have gone through: unknown, not pending for ever, so that
            # reconciliation or the next try (with the same keys) settles each of them.
            lost = ChargeResult.unknown("The call to the gateway failed.")
            for claim in claims:
                _record(claim.attempt.pk, lost, actor=actor)
            raise
        _record_many(claims, results, actor=actor)
        made += [(claim.position, claim.attempt.pk) for claim in claims]
    return [attempt_id for _, attempt_id in sorted(made)]


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

    Open invoices of autocharge customers only, charged by `invoices_autocharge`.
    """
    open_invoices = Invoice.objects.filter(
        customer=customer, status=Invoice.Status.OPEN, amount_due__gt=0
    ).order_by("due_on", "id")
    return invoices_autocharge(
        invoice_ids=list(open_invoices.values_list("id", flat=True)), actor=actor
    )


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
    return _retry_blocked(payment_method)


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
            open_attempt.claimed_at = timezone.now()
            open_attempt.save(update_fields=["status", "claimed_at"])
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
        if _retry_blocked(method):
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


# --- the three steps, for a batch (autocharge) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    position: int  # in the caller's invoice_ids
    attempt: PaymentAttempt  # pending
    request: ChargeRequest
    # The attempt's audit snapshot as claimed, when the claim wrote it (None: read elsewhere)
    snapshot: dict[str, Any] | None = None


class _Due(NamedTuple):
    """What a claim reads of an invoice: what decides it, and what the charge carries."""

    pk: int
    customer_id: int
    status: str
    amount_due: Decimal
    currency: str
    number: str | None
    autocharge: bool  # the customer's


class _Method(NamedTuple):
    pk: int
    gateway: str
    reference: str


def _claim_many(
    queue: list[tuple[int, int]], *, actor: Actor
) -> tuple[list[_Claim], list[tuple[int, int]]]:
    """Claim what `invoice_autocharge` would charge of `queue` ((position, invoice id) pairs),
    as `_claim` does, in one durable transaction and a constant number of queries. Returns the
    claims and what waits for the next round: an invoice whose payment methods (default, or
    that of its unknown attempt) or itself were claimed before it in this round, since the
    outcome of that charge decides its own (a hard decline blocks the method)."""
    claimed: list[tuple[int, PaymentAttempt, ChargeRequest]] = []
    retried: dict[int, dict[str, Any]] = {}  # position -> the unknown attempt's audit before
    waiting: list[tuple[int, int]] = []
    with transaction.atomic(durable=True):
        # Columns, not instances: nothing of the invoice (or its customer) is written here.
        invoices = {
            row[0]: _Due._make(row)
            for row in Invoice.objects.select_for_update(of=("self",))
            .filter(any_of("pk", {invoice_id for _, invoice_id in queue}))
            .order_by("pk")
            .values_list(
                "pk",
                "customer_id",
                "status",
                "amount_due",
                "currency",
                "number",
                "customer__autocharge",
            )
        }
        customer_ids = {invoice.customer_id for invoice in invoices.values()}
        defaults = {
            customer_id: _Method(pk, gateway, reference)
            for pk, customer_id, gateway, reference in PaymentMethod.objects.filter(
                any_of("customer_id", customer_ids),
                is_default=True,
                status=PaymentMethod.Status.ACTIVE,
            ).values_list("pk", "customer_id", "gateway", "reference")
        }
        open_attempts = {
            attempt.invoice_id: attempt
            for attempt in PaymentAttempt.objects.select_for_update(of=("self",))
            .select_related("payment_method")
            .filter(any_of("invoice_id", invoices), status__in=OPEN_ATTEMPT)
            .order_by("pk")
        }
        blocked = _blocked_methods([method.pk for method in defaults.values()])
        numbers = dict(
            PaymentAttempt.objects.filter(any_of("invoice_id", invoices))
            .values("invoice_id")
            .annotate(n=Max("attempt_number"))
            .values_list("invoice_id", "n")
        )
        references = {
            (customer_id, gateway): reference
            for customer_id, gateway, reference in GatewayCustomer.objects.filter(
                any_of("customer_id", customer_ids)
            ).values_list("customer_id", "gateway", "reference")
        }
        now, wall = clock.now(), timezone.now()
        claimed_invoices: set[int] = set()
        claimed_methods: set[int] = set()
        for position, invoice_id in queue:
            invoice = invoices.get(invoice_id)
            if invoice is None:
                continue
            method = defaults.get(invoice.customer_id)
            open_attempt = open_attempts.get(invoice_id)
            methods = {method.pk} if method is not None else set()
            if open_attempt is not None:
                methods.add(open_attempt.payment_method_id)
            if invoice_id in claimed_invoices or methods & claimed_methods:
                waiting.append((position, invoice_id))
                continue
            if (
                invoice.status != Invoice.Status.OPEN
                or invoice.amount_due <= 0
                or not invoice.autocharge
                or method is None
                or method.pk in blocked
                or (
                    open_attempt is not None
                    and open_attempt.status == PaymentAttempt.Status.PENDING
                )
            ):
                continue
            # Outcome unknown: this is its retry, with the same key, card and amount, so the
            # gateway answers from its idempotency record if the first call got through.
            attempt = open_attempt or _new_attempt(invoice, method, numbers, now=now)
            reference = references.get((invoice.customer_id, attempt.gateway))
            if reference is None:
                logger.warning(
                    "Invoice %s is not charged: customer %s has no %s record.",
                    invoice.pk,
                    invoice.customer_id,
                    attempt.gateway,
                )
                continue
            if open_attempt is not None:
                retried[position] = audit_snapshot(open_attempt)
                open_attempt.status = PaymentAttempt.Status.PENDING
                open_attempt.claimed_at = wall
            request = ChargeRequest(
                amount=attempt.amount,
                currency=attempt.currency,
                customer_reference=reference,
                payment_method_reference=(
                    open_attempt.payment_method.reference
                    if open_attempt is not None
                    else method.reference
                ),
                idempotency_key=attempt.idempotency_key,
                description=f"Invoice {invoice.number}",
            )
            claimed.append((position, attempt, request))
            claimed_invoices.add(invoice_id)
            claimed_methods |= methods
        insert_rows([attempt for position, attempt, _ in claimed if position not in retried])
        if retried:
            PaymentAttempt.objects.filter(
                pk__in=[attempt.pk for position, attempt, _ in claimed if position in retried]
            ).update(status=PaymentAttempt.Status.PENDING, claimed_at=wall)
        claims = [
            _Claim(position, attempt, request, snapshot=audit_snapshot(attempt))
            for position, attempt, request in claimed
        ]
        audit_record_bulk(
            actor=actor,
            records=[
                AuditSpec(
                    "payment_attempt.retry",
                    claim.attempt,
                    before=retried[claim.position],
                    after=claim.snapshot,
                )
                if claim.position in retried
                else AuditSpec("payment_attempt.create", claim.attempt, after=claim.snapshot)
                for claim in claims
            ],
        )
    return claims, waiting


def _new_attempt(
    invoice: _Due, method: _Method, numbers: dict[int, int], *, now: datetime
) -> PaymentAttempt:
    number = numbers.get(invoice.pk, 0) + 1
    return PaymentAttempt(
        invoice_id=invoice.pk,
        customer_id=invoice.customer_id,
        attempt_number=number,
        idempotency_key=f"invoice-{invoice.pk}-attempt-{number}",
        trigger=PaymentAttempt.Trigger.AUTOCHARGE,
        amount=invoice.amount_due,
        currency=invoice.currency,
        payment_method_id=method.pk,
        gateway=method.gateway,
        created_at=now,
    )


def _charge_many(claims: Sequence[_Claim]) -> dict[int, ChargeResult]:
    """Step 2 for a batch, outside any transaction: one `charge_many` per gateway. The
    outcomes by attempt id."""
    by_gateway: dict[str, list[_Claim]] = defaultdict(list)
    for claim in claims:
        by_gateway[claim.attempt.gateway].append(claim)
    results: dict[int, ChargeResult] = {}
    for name, group in by_gateway.items():
        answers = get_gateway(name).charge_many([claim.request for claim in group])
        results.update(zip((claim.attempt.pk for claim in group), answers, strict=True))
    return results


def _record_many(
    claims: Sequence[_Claim], results: dict[int, ChargeResult], *, actor: Actor
) -> None:
    """Step 3 for a batch: the successes in one transaction; declines and unknown outcomes,
    rare, one by one (dunning takes each up)."""
    _record_successes(
        [claim for claim in claims if results[claim.attempt.pk].status == SUCCEEDED],
        results,
        actor=actor,
    )
    for claim in claims:
        result = results[claim.attempt.pk]
        if result.status != SUCCEEDED:
            _record(claim.attempt.pk, result, actor=actor)


# What a write may change on an attempt once created: the rest never changes.
_ATTEMPT_STATE = (
    "status",
    "gateway_reference",
    "decline_code",
    "decline_kind",
    "error_message",
    "resolved_at",
    "claimed_at",
)
_SUCCESS_FIELDS = (
    "status",
    "gateway_reference",
    "decline_code",
    "decline_kind",
    "error_message",
    "resolved_at",
)
_PAID_FIELDS = ("amount_paid", "amount_due", "status", "paid_at")


def _record_successes(
    claims: Sequence[_Claim], results: dict[int, ChargeResult], *, actor: Actor
) -> None:
    """What `payment_attempt_record_outcome` and `_pay` write for each charge that succeeded,
    in bulk: the invoices locked (id order), then the attempts."""
    if not claims:
        return
    with transaction.atomic():
        invoices = {
            invoice.pk: invoice
            for invoice in Invoice.objects.select_for_update(of=("self",))
            .filter(any_of("pk", {claim.attempt.invoice_id for claim in claims}))
            .order_by("pk")
        }
        attempts = _lock_claimed(claims)
        now, today = clock.now(), clock.today()
        settled: list[tuple[PaymentAttempt, dict[str, Any], dict[str, Any]]] = []
        for claim in claims:
            attempt, before = attempts[claim.attempt.pk]
            if attempt.status not in OPEN_ATTEMPT:
                continue  # settled meanwhile (a webhook reported it)
            attempt.gateway_reference = results[attempt.pk].reference or attempt.gateway_reference
            attempt.status = PaymentAttempt.Status.SUCCEEDED
            attempt.decline_code = attempt.decline_kind = attempt.error_message = ""
            attempt.resolved_at = now
            settled.append((attempt, before, _snapshot_with(before, attempt, _SUCCESS_FIELDS)))
        if not settled:
            return
        # The snapshots hold the rows as locked: only the columns some success changes are
        # written (an error message to clear is rare: a retried unknown outcome's).
        update_rows(
            [attempt for attempt, _, _ in settled],
            [
                name
                for name in _SUCCESS_FIELDS
                if any(before[name] != after[name] for _, before, after in settled)
            ],
        )
        payments = [
            Payment(
                customer_id=attempt.customer_id,
                invoice_id=attempt.invoice_id,
                amount=attempt.amount,
                currency=invoices[attempt.invoice_id].currency,
                method=Payment.Method.CARD,
                gateway=attempt.gateway,
                gateway_reference=attempt.gateway_reference,
                attempt_id=attempt.pk,
                received_on=today,
                created_at=now,
            )
            for attempt, _, _ in settled
        ]
        insert_rows(payments)
        audits: list[AuditSpec] = []
        paid: list[tuple[Payment, Invoice]] = []
        newly_paid: set[int] = set()
        for (attempt, attempt_before, attempt_after), payment in zip(
            settled, payments, strict=True
        ):
            invoice = invoices[attempt.invoice_id]
            paid.append((payment, invoice))
            before = audit_snapshot(invoice)
            was_paid = invoice.status == Invoice.Status.PAID
            invoice.amount_paid += payment.amount
            # Claims freeze what is due while a charge is in flight (see `_pay`).
            _set_amount_due(invoice, now=now)
            if invoice.status == Invoice.Status.PAID and not was_paid:
                newly_paid.add(invoice.pk)
            audits += [
                AuditSpec(
                    "payment_attempt.succeeded",
                    attempt,
                    before=attempt_before,
                    after=attempt_after,
                ),
                AuditSpec("payment.create", payment, after=audit_snapshot(payment)),
                AuditSpec(
                    "invoice.pay",
                    invoice,
                    before=before,
                    after=_snapshot_with(before, invoice, _PAID_FIELDS),
                ),
            ]
        update_rows([invoice for _, invoice in paid], _PAID_FIELDS)
        book_payments(payments=payments)
        audit_record_bulk(actor=actor, records=audits)
        lines: dict[int, list[LineValues]] = defaultdict(list)
        if newly_paid:
            for invoice_id, *values in (
                InvoiceLine.objects.filter(any_of("invoice_id", newly_paid))
                .order_by("invoice_id", "position", "id")
                .values_list("invoice_id", *LINE_VALUES)
            ):
                lines[invoice_id].append(LineValues(*values))
        events: list[EventSpec] = []
        for payment, invoice in paid:
            events.append(
                EventSpec(
                    type=EventType.PAYMENT_SUCCEEDED,
                    payload=payment_payload(payment),
                    customer_id=payment.customer_id,
                )
            )
            if invoice.pk in newly_paid:
                events.append(
                    EventSpec(
                        type=EventType.INVOICE_PAID,
                        payload=invoice_payload(invoice, lines[invoice.pk]),
                        customer_id=invoice.customer_id,
                    )
                )
        event_emit_bulk(events=events)
        payment_outcomes_recorded(invoice_ids=[attempt.invoice_id for attempt, _, _ in settled])


def _lock_claimed(claims: Sequence[_Claim]) -> dict[int, tuple[PaymentAttempt, dict[str, Any]]]:
    """The claims' attempts locked (id order), each as it now is with its audit snapshot.

    Only the columns a write may change are read under the lock: where they all still hold
    what the claim holds, so does the whole row (no write touches the others: the invoice,
    key, amount, method... of an attempt are set once, at its creation), and the claim's
    attempt and snapshot are taken as they are. Any other attempt (a webhook, a sweeper or a
    retry wrote it meanwhile) is read again in full."""
    held = {claim.attempt.pk: claim for claim in claims}
    changed: list[int] = []
    attempts: dict[int, tuple[PaymentAttempt, dict[str, Any]]] = {}
    for pk, *state in (
        PaymentAttempt.objects.select_for_update()
        .filter(any_of("pk", held))
        .order_by("pk")
        .values_list("pk", *_ATTEMPT_STATE)
    ):
        claim = held[pk]
        if state != [getattr(claim.attempt, name) for name in _ATTEMPT_STATE]:
            changed.append(pk)
            continue
        snapshot = claim.snapshot if claim.snapshot is not None else audit_snapshot(claim.attempt)
        attempts[pk] = (claim.attempt, snapshot)
    if changed:  # already locked: read as it now is
        for attempt in PaymentAttempt.objects.filter(any_of("pk", changed)):
            attempts[attempt.pk] = (attempt, audit_snapshot(attempt))
    return attempts


def _snapshot_with(
    snapshot: dict[str, Any], instance: models.Model, fields: Sequence[str]
) -> dict[str, Any]:
    """`audit_snapshot(instance)` where only `fields` (plain values: text, decimals, times or
    None) changed since `snapshot` was taken of it."""
    after = dict(snapshot)
    for name in fields:
        value = getattr(instance, name)
        after[name] = value if value is None or isinstance(value, str) else str(value)
    return after


# --- the sweeper: what a dead worker left behind -----------------------------------------------

_SWEEP_BATCH = 500
_NEVER_SEEN = "Its worker died before the gateway saw the key: sent again with it."


def payment_attempts_sweep(
    *, stale_after: timedelta | None = None, actor: Actor = SWEEPER
) -> dict[str, int]:
    """Settle what workers that died mid-charge left behind, never charging anything twice.

    1. An attempt still pending `stale_after` (PAYMENT_ATTEMPT_STALE_MINUTES) after its claim,
       by the wall clock, lost its worker between the claim and the record. The gateway is asked
       about its key: a charge it made is recorded as the worker would have (payment, ledger,
       events, listeners); a key it never saw is marked unknown and sent again, the same key,
       by `invoices_autocharge` (a batch) or else `payment_attempt_reconcile`.
    2. An attempt whose outcome has been unknown (a timeout, a processing error) since a claim
       more than `stale_after` ago is reconciled (`payment_attempt_reconcile`): a charge the
       gateway made under its key is recorded, a key it never saw is sent again, the same key.
       A gateway that cannot be asked leaves it for the next sweep.
    3. An open invoice of an autocharge customer with no attempt at all, finalized more than
       `stale_after` ago, lost its worker before the autocharge that follows the finalizing
       commit: it is autocharged now. An invoice with attempts is dunning's business.

    Safe to run concurrently and twice: an attempt is settled under its row lock (skipped while
    another sweeper or a late worker holds it) and only while it is still pending. One failure
    is logged and does not stop the others. Returns how many of each were found and settled.
    """
    if stale_after is None:
        stale_after = timedelta(minutes=settings.PAYMENT_ATTEMPT_STALE_MINUTES)
    counts: dict[str, int] = defaultdict(int)
    # Wall clock: a dead worker is noticed by real elapsed time, even under a test clock.
    claimed_before = timezone.now() - stale_after
    after = 0
    while True:
        ids = list(
            PaymentAttempt.objects.filter(
                status=PaymentAttempt.Status.PENDING, claimed_at__lte=claimed_before, pk__gt=after
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:_SWEEP_BATCH]
        )
        if not ids:
            break
        after = ids[-1]
        counts["stale_attempts"] += len(ids)
        _settle_stale(ids, claimed_before=claimed_before, actor=actor, counts=counts)
    _reconcile_unknown(claimed_before=claimed_before, actor=actor, counts=counts)
    _autocharge_unattempted(stale_after=stale_after, actor=actor, counts=counts)
    return {kind: count for kind, count in counts.items() if count}


def _reconcile_unknown(*, claimed_before: datetime, actor: Actor, counts: dict[str, int]) -> None:
    """Reconcile the attempts unknown since before `claimed_before`, one by one: rare (the
    gateway timed out or failed), and each asks the gateway about its own key. A reconciled
    attempt sent again is claimed again, so one still unknown waits another stale period."""
    stale = (
        PaymentAttempt.objects.select_related("invoice", "customer", "payment_method")
        .filter(status=PaymentAttempt.Status.UNKNOWN, claimed_at__lte=claimed_before)
        .order_by("pk")[:_SWEEP_BATCH]
    )
    for attempt in stale:
        counts["unknown_attempts"] += 1
        try:
            settled = payment_attempt_reconcile(attempt=attempt, actor=actor)
        except ConflictError:
            continue  # taken up meanwhile (another sweeper, a retry): settled there
        except Exception:
            logger.exception("Unknown payment attempt %s: it was not reconciled.", attempt.pk)
            counts["failed"] += 1
        else:
            counts[settled.status] += 1


def _settle_stale(
    ids: list[int], *, claimed_before: datetime, actor: Actor, counts: dict[str, int]
) -> None:
    claims, answers = _lookup_charges(ids, counts=counts)
    charged = {
        pk: answer for pk, answer in answers.items() if answer and answer.status == SUCCEEDED
    }
    _record_stale_successes(
        [claims[pk] for pk in charged],
        charged,
        claimed_before=claimed_before,
        actor=actor,
        counts=counts,
    )
    never_seen: list[int] = []
    for pk, answer in answers.items():
        if pk in charged:
            continue
        # Never seen: unknown first, the one state a retry with the same key takes up.
        outcome = answer or ChargeResult.unknown(_NEVER_SEEN)
        if not _record_stale(
            pk, outcome, claimed_before=claimed_before, actor=actor, counts=counts
        ):
            continue
        if answer is None:
            never_seen.append(pk)
        else:
            counts[answer.status] += 1
    _send_again(never_seen, actor=actor, counts=counts)


def _lookup_charges(
    ids: list[int], *, counts: dict[str, int]
) -> tuple[dict[int, _Claim], dict[int, ChargeResult | None]]:
    """The claims the dead workers held, and what the gateway made of each one's key (None:
    never seen), asked outside any transaction. An attempt the gateway could not be asked
    about stays pending for the next sweep."""
    attempts = (
        PaymentAttempt.objects.select_related("invoice", "payment_method")
        .filter(pk__in=ids, status=PaymentAttempt.Status.PENDING)
        .order_by("pk")
    )
    references = {
        (customer_id, gateway): reference
        for customer_id, gateway, reference in GatewayCustomer.objects.filter(
            customer_id__in=PaymentAttempt.objects.filter(pk__in=ids).values("customer_id")
        ).values_list("customer_id", "gateway", "reference")
    }
    claims: dict[int, _Claim] = {}
    answers: dict[int, ChargeResult | None] = {}
    for position, attempt in enumerate(attempts):
        reference = references.get((attempt.customer_id, attempt.gateway))
        if reference is None:
            logger.error(
                "Stale payment attempt %s: customer %s has no %s record.",
                attempt.pk,
                attempt.customer_id,
                attempt.gateway,
            )
            counts["failed"] += 1
            continue
        request = ChargeRequest(
            amount=attempt.amount,
            currency=attempt.currency,
            customer_reference=reference,
            payment_method_reference=attempt.payment_method.reference,
            idempotency_key=attempt.idempotency_key,
            description=f"Invoice {attempt.invoice.number}",
        )
        try:
            answers[attempt.pk] = get_gateway(attempt.gateway).lookup_charge(
                idempotency_key=request.idempotency_key,
                customer_reference=request.customer_reference,
            )
        except Exception:
            logger.exception(
                "Stale payment attempt %s: the gateway could not be asked.", attempt.pk
            )
            counts["failed"] += 1
            continue
        claims[attempt.pk] = _Claim(position=position, attempt=attempt, request=request)
    return claims, answers


def _lock_stale(
    ids: Sequence[int], *, claimed_before: datetime
) -> list[tuple[PaymentAttempt, Invoice]]:
    """Those of `ids` still pending since before `claimed_before`, locked with their invoices
    (the invoices first, as every writer of attempts locks them); rows another transaction
    holds are skipped. Call inside a transaction."""
    invoices = {
        invoice.pk: invoice
        for invoice in Invoice.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("customer")
        .filter(pk__in=PaymentAttempt.objects.filter(pk__in=ids).values("invoice_id"))
        .order_by("pk")
    }
    # Checked again on the locked rows: a late worker, a Stripe webhook or another sweeper may
    # have settled the attempt, or a retry claimed it afresh, since it was read.
    attempts = (
        PaymentAttempt.objects.select_for_update(skip_locked=True)
        .filter(
            pk__in=ids,
            invoice_id__in=list(invoices),
            status=PaymentAttempt.Status.PENDING,
            claimed_at__lte=claimed_before,
        )
        .order_by("pk")
    )
    return [(attempt, invoices[attempt.invoice_id]) for attempt in attempts]


def _record_stale_successes(
    claims: list[_Claim],
    results: dict[int, ChargeResult],
    *,
    claimed_before: datetime,
    actor: Actor,
    counts: dict[str, int],
) -> None:
    """The charges the gateway made, recorded together as a batch's successes are; one by one
    if that fails, so that one bad row does not hold the others back."""
    if not claims:
        return
    try:
        with transaction.atomic():
            locked = {
                attempt.pk
                for attempt, _ in _lock_stale(
                    [claim.attempt.pk for claim in claims], claimed_before=claimed_before
                )
            }
            _record_successes(
                [claim for claim in claims if claim.attempt.pk in locked], results, actor=actor
            )
    except Exception:
        logger.exception(
            "Stale payment attempts: recording %s charges together failed.", len(claims)
        )
        for claim in claims:
            if _record_stale(
                claim.attempt.pk,
                results[claim.attempt.pk],
                claimed_before=claimed_before,
                actor=actor,
                counts=counts,
            ):
                counts[SUCCEEDED] += 1
    else:
        counts[SUCCEEDED] += len(locked)


def _record_stale(
    attempt_id: int,
    result: ChargeResult,
    *,
    claimed_before: datetime,
    actor: Actor,
    counts: dict[str, int],
) -> bool:
    """Record `result` on the attempt if it is still a stale pending one, as a charge's outcome
    is recorded (`payment_attempt_record_outcome`). Whether it was recorded."""
    try:
        with transaction.atomic():
            locked = _lock_stale([attempt_id], claimed_before=claimed_before)
            for attempt, invoice in locked:
                payment_attempt_record_outcome(
                    attempt=attempt, invoice=invoice, result=result, actor=actor
                )
                if attempt.status == PaymentAttempt.Status.UNKNOWN:
                    # This sweep sends it again now: not stale for another sweep meanwhile.
                    PaymentAttempt.objects.filter(pk=attempt.pk).update(claimed_at=timezone.now())
    except Exception:
        logger.exception("Stale payment attempt %s: its outcome was not recorded.", attempt_id)
        counts["failed"] += 1
        return False
    return bool(locked)


def _send_again(attempt_ids: list[int], *, actor: Actor, counts: dict[str, int]) -> None:
    """Charge the attempts the gateway never saw, now unknown, with their own keys: together
    by `invoices_autocharge` (which retries an unknown attempt with its key), then those it
    does not take up (a pay-now of a customer who pays by invoice, a default card gone or
    declined hard since) one by one by `payment_attempt_reconcile`."""
    if not attempt_ids:
        return
    invoice_ids = dict(
        PaymentAttempt.objects.filter(pk__in=attempt_ids).values_list("pk", "invoice_id")
    )
    taken: set[int] = set()
    try:
        taken = set(
            invoices_autocharge_ids(
                invoice_ids=[invoice_ids[pk] for pk in attempt_ids], actor=actor
            )
        )
    except Exception:
        logger.exception("Stale payment attempts %s: sending them again failed.", attempt_ids)
    counts["sent_again"] += len(taken & set(attempt_ids))
    left = (
        PaymentAttempt.objects.select_related("invoice", "customer", "payment_method")
        .filter(pk__in=set(attempt_ids) - taken, status=PaymentAttempt.Status.UNKNOWN)
        .order_by("pk")
    )
    for attempt in left:
        try:
            payment_attempt_reconcile(attempt=attempt, actor=actor)
        except Exception:
            logger.exception("Stale payment attempt %s: it was not sent again.", attempt.pk)
            counts["failed"] += 1
        else:
            counts["sent_again"] += 1


def _autocharge_unattempted(
    *, stale_after: timedelta, actor: Actor, counts: dict[str, int]
) -> None:
    """Autocharge the open invoices of autocharge customers that were never attempted."""
    # `finalized_at` is platform time, which under a test clock may be far from the wall clock
    # either way, so it is compared with the platform clock. The autocharge runs at once after
    # the finalizing commit, in the same process, before that process moves any clock on: an
    # invoice finalized more than the stale period ago (by either clock) with no attempt at all
    # was left by a dead worker. Without a default payment method autocharge skips it: not read.
    finalized_before = clock.now() - stale_after
    unattempted = (
        Invoice.objects.filter(
            status=Invoice.Status.OPEN,
            amount_due__gt=0,
            customer__autocharge=True,
            finalized_at__lte=finalized_before,
        )
        .filter(~Exists(PaymentAttempt.objects.filter(invoice_id=OuterRef("pk"))))
        .filter(
            Exists(
                PaymentMethod.objects.filter(
                    customer_id=OuterRef("customer_id"),
                    is_default=True,
                    status=PaymentMethod.Status.ACTIVE,
                )
            )
        )
        .order_by("pk")
    )
    after = 0
    while True:
        ids = list(unattempted.filter(pk__gt=after).values_list("pk", flat=True)[:_SWEEP_BATCH])
        if not ids:
            break
        after = ids[-1]
        counts["unattempted_invoices"] += len(ids)
        try:
            counts["invoices_charged"] += len(invoices_autocharge_ids(invoice_ids=ids, actor=actor))
        except Exception:
            logger.exception("Unattempted invoices %s..%s: autocharge failed.", ids[0], ids[-1])
            counts["failed"] += 1


# --- helpers ------------------------------------------------------------------------------------


def _require_open(invoice: Invoice) -> None:
    if invoice.status != Invoice.Status.OPEN:
        raise ConflictError(
            f"Invoice {invoice} is {invoice.status}; only an open invoice is paid.",
            code="invoice_not_open",
        )


def _retry_blocked(method: PaymentMethod) -> bool:
    return method.pk in _blocked_methods([method.pk])


def _blocked_methods(method_ids: Sequence[int]) -> set[int]:
    """Those of `method_ids` whose latest settled attempt was declined hard.

    Per payment method, whatever the invoice: card networks frown on charging a card again
    after a hard decline (stolen, closed...), and nothing but another method can help.
    """
    latest = (
        PaymentAttempt.objects.filter(any_of("payment_method_id", method_ids))
        .exclude(status__in=OPEN_ATTEMPT)
        .order_by("payment_method_id", F("resolved_at").desc(nulls_last=True), "-id")
        .distinct("payment_method_id")
        .values_list("payment_method_id", "status", "decline_kind")
    )
    return {
        method_id
        for method_id, status, kind in latest
        if status == PaymentAttempt.Status.DECLINED and kind == PaymentAttempt.DeclineKind.HARD
    }


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
