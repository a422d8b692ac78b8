"""Dunning: collecting a subscription invoice whose charge failed (docs/dunning.md).

One `DunningCase` per unpaid subscription invoice. Its calendar counts from the first failed
charge (day 0, the platform clock): retries on the days of DUNNING_RETRY_DAYS, the warning stage
from DUNNING_WARNING_AFTER_DAYS, the blocked stage (entitlements off, see
subscriptions.entitlements) from DUNNING_BLOCK_AFTER_DAYS, and the final action (cancel, or leave
the invoice unpaid) on DUNNING_FINAL_ACTION_AFTER_DAYS. A hard decline is never retried: the
case waits for a new payment method, whose saving makes billing retry at once.

How dunning hears of billing without billing importing subscriptions: billing calls the
listeners registered in `billing.listeners` after each transaction that recorded payment
outcomes; `SubscriptionsConfig.ready()` registers `dunning_sync_invoices` there, which syncs
only the invoices dunning has to look at (a batch of renewals just paid costs one query). The
daily work (`dunning_process_day`, registered with core.clock) syncs every case again before
acting, so a missed callback is caught up within a day.

Idempotent per day: a case is re-read under lock before each step; a retry is claimed (the case
records the day and moves its next retry date) in a committed transaction before the gateway is
called, so running a day twice never retries twice; stages only move forward; a closed case is
never touched again. Emails go out after the commit, each at most once (a dedupe key per
failure, stage and outcome).

Locks: the case's subscriptions (pk order), then the case, then (leave unpaid) the invoice, as
the lifecycle services do. Billing never waits on a subscription row, so there is no cycle.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from billing.models import Invoice, InvoiceLine, PaymentAttempt
from billing.services import invoice_autocharge, invoice_mark_uncollectible
from core import clock
from core.actors import Actor
from core.bulk import array_literal
from core.errors import ApplicationError
from core.money import format_amount
from core.notifications.services import notification_send
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import event_emit
from subscriptions.models import DunningCase, Subscription, SubscriptionEvent
from subscriptions.services import Policy, state, subscription_cancel

logger = logging.getLogger(__name__)

DUNNING_ACTOR = Actor.system("dunning")
CANCEL = "cancel"
LEAVE_UNPAID = "leave_unpaid"
CANCEL_REASON = "unpaid"

Stage = DunningCase.Stage
Outcome = DunningCase.Outcome
_STAGE_RANK: dict[str, int] = {Stage.PAST_DUE: 0, Stage.WARNING: 1, Stage.BLOCKED: 2}
_HARD = PaymentAttempt.DeclineKind.HARD
_FAILED = SubscriptionEvent.Kind.PAYMENT_FAILED


@dataclass
class _Work:
    """What one step did: counts for the daily report, emails to send after the commit."""

    counts: Counter[str] = field(default_factory=Counter)
    mails: list[dict[str, Any]] = field(default_factory=list)


# --- the calendar -------------------------------------------------------------------------------


def dunning_retry_dates(first_failed_on: date) -> list[date]:
    return [first_failed_on + timedelta(days=days) for days in settings.DUNNING_RETRY_DAYS]


def dunning_stage_for(*, first_failed_on: date, day: date) -> str:
    elapsed = (day - first_failed_on).days
    if elapsed >= settings.DUNNING_BLOCK_AFTER_DAYS:
        return Stage.BLOCKED
    if elapsed >= settings.DUNNING_WARNING_AFTER_DAYS:
        return Stage.WARNING
    return Stage.PAST_DUE


def dunning_final_action_on(case: DunningCase) -> date:
    return case.first_failed_on + timedelta(days=settings.DUNNING_FINAL_ACTION_AFTER_DAYS)


def _next_retry(case: DunningCase, after: date) -> date | None:
    if case.last_decline_kind == _HARD:
        return None  # a hard decline waits for a new payment method
    final = dunning_final_action_on(case)
    return next(
        (day for day in dunning_retry_dates(case.first_failed_on) if after < day < final), None
    )


# --- syncing a case with billing --------------------------------------------------------------


def dunning_sync_invoice(invoice_id: int) -> DunningCase | None:
    """Bring the dunning of one invoice in line with billing: open a case at the first declined
    charge of a subscription invoice, note each later failure (timeline, webhook, email), close
    it once the invoice is paid (recovered), voided or written off. Safe to call any time, any
    number of times: billing's payment listener (through `dunning_sync_invoices`) and the first
    step of each daily run."""
    work = _Work()
    with transaction.atomic(durable=True):
        case = _sync(invoice_id, work)
    _send(work.mails)
    return case


def dunning_sync_invoices(invoice_ids: Sequence[int]) -> None:
    """Billing's payment listener: `dunning_sync_invoice` for each of `invoice_ids` with an open
    case, or open, declined and without a case (one query finds them); for any other invoice the
    sync would do nothing. One invoice's failure is logged; the others are synced all the same."""
    for invoice_id in _needing_sync(invoice_ids):
        try:
            dunning_sync_invoice(invoice_id)
        except Exception:
            logger.exception("dunning could not sync invoice %s", invoice_id)


def _needing_sync(invoice_ids: Sequence[int]) -> list[int]:
    """Those of `invoice_ids` with an open case, or open with a declined charge and no case.

    One plain statement, the ids as one array: after each chunk of a billing run the listener
    hears of hundreds of invoices just paid, none of which (or hardly any) needs a sync, and
    Django would bind each id of an `__in` on its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.id FROM {Invoice._meta.db_table} i "  # noqa: S608 - our tables
            f"LEFT JOIN {DunningCase._meta.db_table} c ON c.invoice_id = i.id "
            "WHERE i.id = ANY(%s::bigint[]) AND (c.status = %s OR (c.id IS NULL AND i.status = %s "
            f"AND EXISTS (SELECT 1 FROM {PaymentAttempt._meta.db_table} a "
            "WHERE a.invoice_id = i.id AND a.status = %s))) ORDER BY i.id",
            [
                array_literal(invoice_ids),
                str(DunningCase.Status.OPEN),
                str(Invoice.Status.OPEN),
                str(PaymentAttempt.Status.DECLINED),
            ],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _sync(invoice_id: int, work: _Work) -> DunningCase | None:
    subscription_ids = sorted(
        {
            subscription_id
            for subscription_id in InvoiceLine.objects.filter(
                invoice_id=invoice_id, subscription_id__isnull=False
            ).values_list("subscription_id", flat=True)
            if subscription_id is not None
        }
    )
    if not subscription_ids:
        return None  # not a subscription invoice: billing's reminders are enough
    subscriptions = _lock_subscriptions(subscription_ids)
    case = DunningCase.objects.select_for_update().filter(invoice_id=invoice_id).first()
    if case is not None and case.status == DunningCase.Status.CLOSED:
        return case
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    settled: dict[str, str] = {
        Invoice.Status.PAID: Outcome.RECOVERED,
        Invoice.Status.VOID: Outcome.VOIDED,
        Invoice.Status.UNCOLLECTIBLE: Outcome.LEFT_UNPAID,
    }
    if invoice.status in settled:
        if case is not None:
            _close(case, invoice, subscriptions, outcome=settled[invoice.status], work=work)
        return case
    if invoice.status != Invoice.Status.OPEN:
        return case
    declined = list(
        PaymentAttempt.objects.filter(
            invoice_id=invoice_id, status=PaymentAttempt.Status.DECLINED
        ).order_by("attempt_number")
    )
    if case is None:
        if not declined:
            return None
        case = _open(invoice, subscriptions, declined[0], work=work)
    for attempt in declined:
        if case.last_attempt_id is None or attempt.pk > case.last_attempt_id:
            _note_failure(case, invoice, subscriptions, attempt, work=work)
    return case


def _lock_subscriptions(ids: list[int]) -> list[Subscription]:
    return list(
        Subscription.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
    )


def _open(
    invoice: Invoice, subscriptions: list[Subscription], first: PaymentAttempt, *, work: _Work
) -> DunningCase:
    failed_at = first.resolved_at or first.created_at
    now = clock.now()
    case = DunningCase.objects.create(
        invoice=invoice,
        customer_id=invoice.customer_id,
        first_failed_at=failed_at,
        first_failed_on=failed_at.astimezone(UTC).date(),
        created_at=now,
        updated_at=now,
    )
    running = [s for s in subscriptions if s.status != Subscription.Status.CANCELED]
    case.subscriptions.set(running)
    for subscription in running:
        if subscription.status == Subscription.Status.ACTIVE:
            before = audit_snapshot(subscription)
            subscription.status = Subscription.Status.PAST_DUE
            state.save(
                subscription, actor=DUNNING_ACTOR, action="subscription.past_due", before=before
            )
    audit_record(
        actor=DUNNING_ACTOR, action="dunning_case.open", instance=case, after=audit_snapshot(case)
    )
    work.counts["cases_opened"] += 1
    return case


def _note_failure(
    case: DunningCase,
    invoice: Invoice,
    subscriptions: list[Subscription],
    attempt: PaymentAttempt,
    *,
    work: _Work,
) -> None:
    before = audit_snapshot(case)
    failed_on = (attempt.resolved_at or attempt.created_at).astimezone(UTC).date()
    case.attempts += 1
    case.last_attempt_id = attempt.pk
    case.last_decline_code = attempt.decline_code
    case.last_decline_kind = attempt.decline_kind
    case.next_retry_on = _next_retry(case, max(failed_on, case.last_retry_on or failed_on))
    _save(case, action="dunning_case.payment_failed", before=before)
    data = {
        "dunning_case": case.pk,
        "invoice": invoice.pk,
        "attempt_number": attempt.attempt_number,
        "decline_code": attempt.decline_code,
        "decline_kind": attempt.decline_kind,
        "stage": case.stage,
        "next_retry_on": case.next_retry_on,
    }
    for subscription in _members(case, subscriptions):
        state.record_event(subscription, _FAILED, actor=DUNNING_ACTOR, data=data)
    if case.next_retry_on is not None:
        event_emit(
            type=EventType.DUNNING_RETRY_SCHEDULED,
            payload=dunning_case_payload(case),
            customer_id=case.customer_id,
        )
    hard = attempt.decline_kind == _HARD
    work.mails.append(
        _mail(
            case,
            invoice,
            kind="dunning_payment_failed",
            key=f"failed:{attempt.pk}",
            subject=(
                "Your payment failed: please update your card"
                if hard
                else "Your payment failed: we will try again"
            ),
            hard=hard,
            decline_message=attempt.error_message,
        )
    )
    work.counts["failures"] += 1


def _close(
    case: DunningCase,
    invoice: Invoice,
    subscriptions: list[Subscription],
    *,
    outcome: str,
    work: _Work,
) -> None:
    before = audit_snapshot(case)
    case.status = DunningCase.Status.CLOSED
    case.outcome = outcome
    case.next_retry_on = None
    case.closed_at = clock.now()
    _save(case, action=f"dunning_case.{outcome}", before=before)
    if outcome != Outcome.CANCELED:
        _restore(case, invoice, subscriptions, outcome=outcome)
    if outcome == Outcome.RECOVERED:
        event_emit(
            type=EventType.DUNNING_RECOVERED,
            payload=dunning_case_payload(case),
            customer_id=case.customer_id,
        )
        work.mails.append(
            _mail(
                case,
                invoice,
                kind="dunning_recovered",
                key="recovered",
                subject="Payment received: thank you",
            )
        )
    work.counts[f"cases_{outcome}"] += 1


def _restore(
    case: DunningCase, invoice: Invoice, subscriptions: list[Subscription], *, outcome: str
) -> None:
    """Past due subscriptions back to active, unless another unpaid invoice keeps them overdue."""
    for subscription in _members(case, subscriptions):
        data = {"dunning_case": case.pk, "invoice": invoice.pk, "outcome": outcome}
        if outcome == Outcome.LEFT_UNPAID:
            # The debt is written off; the subscription goes on (timeline: the last step).
            state.record_event(
                subscription, _FAILED, actor=DUNNING_ACTOR, data={**data, "step": outcome}
            )
        still_overdue = (
            subscription.dunning_cases.filter(status=DunningCase.Status.OPEN)
            .exclude(pk=case.pk)
            .exists()
        )
        if subscription.status != Subscription.Status.PAST_DUE or still_overdue:
            continue
        before = audit_snapshot(subscription)
        subscription.status = Subscription.Status.ACTIVE
        state.record_event(
            subscription, SubscriptionEvent.Kind.RECOVERED, actor=DUNNING_ACTOR, data=data
        )
        state.save(subscription, actor=DUNNING_ACTOR, action="subscription.recover", before=before)


def _members(case: DunningCase, subscriptions: list[Subscription]) -> list[Subscription]:
    """The case's subscriptions (locked by the caller) that have not ended."""
    ids = set(case.subscriptions.values_list("pk", flat=True))
    return [s for s in subscriptions if s.pk in ids and s.status != Subscription.Status.CANCELED]


# --- the daily work -----------------------------------------------------------------------------


def dunning_process_day(day: date) -> dict[str, int]:
    """Everything dunning does on `day`: catch up with billing (cases to open or close), then for
    each open case the retry due, the stage reached, the final action. One case's failure is
    logged and counted; the others go on. Running a day twice does nothing the second time."""
    counts: Counter[str] = Counter()
    unseen = (
        Invoice.objects.filter(
            status=Invoice.Status.OPEN,
            dunning_case__isnull=True,
            payment_attempts__status=PaymentAttempt.Status.DECLINED,
            lines__subscription_id__isnull=False,
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    open_cases = DunningCase.objects.filter(status=DunningCase.Status.OPEN).values_list(
        "invoice_id", flat=True
    )
    for invoice_id in sorted({*unseen, *open_cases}):
        try:
            counts.update(_process_invoice(invoice_id, day))
        except (ApplicationError, DatabaseError):
            logger.exception("dunning failed for invoice %s on %s", invoice_id, day)
            counts["failed"] += 1
    return {name: value for name, value in sorted(counts.items()) if value}


def _process_invoice(invoice_id: int, day: date) -> Counter[str]:
    work = _Work()
    with transaction.atomic(durable=True):
        case = _sync(invoice_id, work)
    _send(work.mails)
    if case is None or case.status == DunningCase.Status.CLOSED:
        return work.counts
    if _claim_retry(case.pk, day):
        attempt = invoice_autocharge(invoice_id=invoice_id, actor=DUNNING_ACTOR)
        work.counts["retries"] += attempt is not None
        # Billing's listener has synced already when it is registered; this is the same sync.
        work.counts.update(_sync_counts(invoice_id))
    work.counts.update(_escalate(case.pk, day))
    return work.counts


def _sync_counts(invoice_id: int) -> Counter[str]:
    work = _Work()
    with transaction.atomic(durable=True):
        _sync(invoice_id, work)
    _send(work.mails)
    return work.counts


def _claim_retry(case_id: int, day: date) -> bool:
    """Take the retry due by `day`, committed before the gateway is called: a second run of the
    day (or a crash after the claim) never charges again for the same scheduled date."""
    with transaction.atomic(durable=True):
        case = DunningCase.objects.select_for_update().get(pk=case_id)
        if (
            case.status != DunningCase.Status.OPEN
            or case.next_retry_on is None
            or case.next_retry_on > day
            or case.last_decline_kind == _HARD
        ):
            return False
        before = audit_snapshot(case)
        case.retries += 1
        case.last_retry_on = day
        case.next_retry_on = _next_retry(case, day)
        _save(case, action="dunning_case.retry", before=before)
    return True


def _escalate(case_id: int, day: date) -> Counter[str]:
    work = _Work()
    with transaction.atomic(durable=True):
        case = DunningCase.objects.get(pk=case_id)
        subscriptions = _lock_subscriptions(list(case.subscriptions.values_list("pk", flat=True)))
        case = DunningCase.objects.select_for_update().select_related("invoice").get(pk=case_id)
        if case.status != DunningCase.Status.OPEN:
            return work.counts
        if day >= dunning_final_action_on(case):
            _final_action(case, subscriptions, work=work)
        else:
            stage = dunning_stage_for(first_failed_on=case.first_failed_on, day=day)
            if _STAGE_RANK[stage] > _STAGE_RANK[case.stage]:
                _move_to(case, subscriptions, stage, work=work)
    _send(work.mails)
    return work.counts


def _move_to(
    case: DunningCase, subscriptions: list[Subscription], stage: str, *, work: _Work
) -> None:
    before = audit_snapshot(case)
    case.stage = stage
    _save(case, action=f"dunning_case.{stage}", before=before)
    data = {"dunning_case": case.pk, "invoice": case.invoice_id, "step": stage}
    for subscription in _members(case, subscriptions):
        state.record_event(subscription, _FAILED, actor=DUNNING_ACTOR, data=data)
    event_emit(
        type=EventType.DUNNING_ESCALATED,
        payload=dunning_case_payload(case),
        customer_id=case.customer_id,
    )
    blocked = stage == Stage.BLOCKED
    work.mails.append(
        _mail(
            case,
            case.invoice,
            kind="dunning_stage",
            key=f"stage:{stage}",
            subject=(
                "Your access is suspended until your invoice is paid"
                if blocked
                else "Reminder: your invoice is overdue"
            ),
            blocked=blocked,
        )
    )
    work.counts[f"to_{stage}"] += 1


def _final_action(case: DunningCase, subscriptions: list[Subscription], *, work: _Work) -> None:
    action = settings.DUNNING_FINAL_ACTION
    invoice = case.invoice
    members = _members(case, subscriptions)
    if action == CANCEL:
        member_ids = {s.pk for s in members}
        for subscription in members:
            if subscription.parent_id in member_ids:
                continue  # an add-on goes with its base
            if Subscription.objects.get(pk=subscription.pk).status == Subscription.Status.CANCELED:
                continue
            subscription_cancel(
                subscription=subscription,
                actor=DUNNING_ACTOR,
                policy=Policy.IMMEDIATE,
                reason=CANCEL_REASON,
                credit_unused=False,  # the unpaid days were never paid: nothing to give back
            )
        outcome = Outcome.CANCELED
    else:
        invoice = invoice_mark_uncollectible(invoice=invoice, actor=DUNNING_ACTOR)
        outcome = Outcome.LEFT_UNPAID
    fresh = _lock_subscriptions([s.pk for s in subscriptions])
    _close(case, invoice, fresh, outcome=outcome, work=work)
    event_emit(
        type=EventType.DUNNING_FINAL_ACTION,
        payload={**dunning_case_payload(case), "final_action": action},
        customer_id=case.customer_id,
    )
    work.mails.append(
        _mail(
            case,
            invoice,
            kind="dunning_final_action",
            key=f"final:{action}",
            subject=(
                "Your subscription was canceled for non-payment"
                if action == CANCEL
                else "Your invoice was closed unpaid"
            ),
            canceled=action == CANCEL,
        )
    )
    work.counts[f"final_{action}"] += 1


# --- shared -------------------------------------------------------------------------------------


def _save(case: DunningCase, *, action: str, before: dict[str, Any]) -> None:
    case.updated_at = clock.now()
    case.save()
    audit_record(
        actor=DUNNING_ACTOR,
        action=action,
        instance=case,
        before=before,
        after=audit_snapshot(case),
    )


def dunning_pay_url(invoice_id: int) -> str:
    """Where a customer pays an invoice in the portal."""
    return f"{settings.PORTAL_BASE_URL}/portal/invoices/{invoice_id}"


def dunning_case_payload(case: DunningCase) -> dict[str, Any]:
    """The case as webhooks carry it (the API's shape)."""
    return {
        "id": case.pk,
        "object": "dunning_case",
        "invoice": case.invoice_id,
        "customer": case.customer_id,
        "subscriptions": sorted(case.subscriptions.values_list("pk", flat=True)),
        "status": case.status,
        "stage": case.stage,
        "outcome": case.outcome or None,
        "first_failed_at": case.first_failed_at,
        "next_retry_on": case.next_retry_on,
        "retries": case.retries,
        "attempts": case.attempts,
        "last_decline_code": case.last_decline_code,
        "last_decline_kind": case.last_decline_kind,
        "closed_at": case.closed_at,
    }


def _mail(
    case: DunningCase, invoice: Invoice, *, kind: str, key: str, subject: str, **context: Any
) -> dict[str, Any]:
    customer = invoice.customer
    return {
        "kind": kind,
        "dedupe_key": f"dunning:{case.pk}:{key}",
        "to": customer.email,
        "subject": subject,
        "template": kind,
        "customer_id": customer.pk,
        "related": case,
        "context": {
            "customer_name": customer.name,
            "invoice_number": invoice.number,
            "amount_due": format_amount(invoice.amount_due, invoice.currency),
            "currency": invoice.currency,
            "pay_url": dunning_pay_url(invoice.pk),
            "stage": case.stage,
            "next_retry_on": case.next_retry_on,
            "block_on": case.first_failed_on + timedelta(days=settings.DUNNING_BLOCK_AFTER_DAYS),
            "final_action_on": dunning_final_action_on(case),
            "final_action": settings.DUNNING_FINAL_ACTION,
            **context,
        },
    }


def _send(mails: list[dict[str, Any]]) -> None:
    """After the commit: a refused email is logged by the notification log, never undoes dunning."""
    for mail in mails:
        notification_send(**mail)


def register() -> None:
    """Called once from SubscriptionsConfig.ready(): the daily work and billing's listener."""
    from billing.listeners import register_payment_listener

    clock.register_daily_work("dunning", dunning_process_day)
    register_payment_listener("dunning", dunning_sync_invoices)
