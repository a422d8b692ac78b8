"""Plain renewals of many subscriptions at once: the billing run's bulk path.

Most of what falls due on a day is a plain renewal: an active, evergreen, stand-alone
subscription at the end of its period, with no change, discount, usage or cancellation pending.
`renewals_process` renews all of those among a chunk's families in ONE transaction with a
constant number of statements: the rows are locked (in pk order) and re-read under the lock,
the catalog is read once for the chunk, and the subscriptions, invoices, lines, ledger entries,
recognition schedules, audit entries and webhook events are written in bulk. The outcome is
exactly `family_process`'s for each family (tests/workers/test_bulk_renewals.py holds both
equal); the billing high-water mark (`billed_through`, `next_transition_on`) moves under the
lock, so a chunk run twice, or alongside another run, bills each period once.

Everything else (bundles, add-ons, trials and phases, changes, pauses, cancellations, usage,
discounts, several periods behind) is left to the caller, which processes it family by family
with `family_process` (`daily.families_process` does both). A customer with a credit balance
is renewed here, its invoice finalized one by one by billing (`invoices_issue`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.db import transaction
from django.db.models import F

from billing.models import Invoice, InvoiceLine
from billing.services.invoice_batches import InvoiceSpec, invoices_issue
from catalog.models import Plan, PlanMeter, PlanPhase, Price, PriceList
from core import clock
from core.actors import Actor
from core.bulk import update_rows
from core.errors import ApplicationError
from core.queries import any_of
from core.services import AuditSpec, audit_record_bulk, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from customers.models import Customer
from subscriptions.models import ScheduledChange, Subscription, SubscriptionDiscount
from subscriptions.services import state
from subscriptions.webhook_payloads import subscription_payload

Status = Subscription.Status


def renewals_process(base_ids: Sequence[int], day: date, *, actor: Actor) -> set[int]:
    """Renew the plain renewals among the base subscriptions `base_ids` due by `day`, in one
    transaction; returns the ids renewed (each on one new invoice). Raises, having written
    nothing, if the batch fails: the caller then processes every family on its own."""
    if not base_ids:
        return set()
    with transaction.atomic():
        subscriptions = _lock_plain(list(base_ids), day)
        renewed = _renew(subscriptions, day, actor=actor)
    return {subscription.pk for subscription in renewed}


def _lock_plain(candidates: list[int], day: date) -> list[Subscription]:
    """The candidates that are plain renewals due by `day`, locked and re-read under the lock.

    The locking query reads the subscription table alone (see `state.lock`); what it cannot
    tell (add-ons, the plan's meters, changes and discounts) is read after the lock.
    """
    locked = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(
            any_of("pk", candidates),
            status=Status.ACTIVE,
            parent_id__isnull=True,
            group_id__isnull=True,
            cancel_at_period_end=False,
            setup_fee_billed=True,
            phase_ends_on__isnull=True,
            billed_through=F("next_transition_on"),
            next_transition_on__lte=day,
        )
        .order_by("pk")
    )
    if not locked:
        return []
    ids = [subscription.pk for subscription in locked]
    # Only whether there are any: a subscription with add-ons, discounts or pending changes is
    # not plain, so none of those rows is needed.
    busy = (
        set(
            Subscription.objects.filter(any_of("parent_id", ids)).values_list(
                "parent_id", flat=True
            )
        )
        | set(
            SubscriptionDiscount.objects.filter(any_of("subscription_id", ids)).values_list(
                "subscription_id", flat=True
            )
        )
        | set(
            ScheduledChange.objects.filter(
                any_of("subscription_id", ids), status=ScheduledChange.Status.PENDING
            ).values_list("subscription_id", flat=True)
        )
    )
    metered = set(
        PlanMeter.objects.filter(
            plan_id__in={subscription.plan_id for subscription in locked}
        ).values_list("plan_id", flat=True)
    )
    plans = Plan.objects.in_bulk({subscription.plan_id for subscription in locked})
    phases = PlanPhase.objects.in_bulk({subscription.phase_id for subscription in locked})
    price_lists = PriceList.objects.in_bulk({s.price_list_id for s in locked})
    # What invoicing reads of a customer (the one with credit, finalized one by one, reads
    # the rest if it needs it).
    customers = Customer.objects.only(*_CUSTOMER_FIELDS).in_bulk(
        {subscription.customer_id for subscription in locked}
    )
    plain = []
    for subscription in locked:
        subscription.plan = plans[subscription.plan_id]
        subscription.phase = phases[subscription.phase_id]
        if (
            subscription.pk not in busy
            and subscription.plan_id not in metered
            and subscription.phase.kind == PlanPhase.Kind.EVERGREEN
            and subscription.phase.plan_id == subscription.plan_id
        ):
            subscription.price_list = price_lists[subscription.price_list_id]
            subscription.customer = customers[subscription.customer_id]
            # What a prefetch would hold (none of either), for the webhook payload.
            subscription._prefetched_objects_cache = {  # type: ignore[attr-defined]
                "discounts": [],
                "scheduled_changes": [],
            }
            plain.append(subscription)
    return plain


def _renew(subscriptions: list[Subscription], day: date, *, actor: Actor) -> list[Subscription]:
    """Bill the next period of each (the ones one period behind at most) and write it all."""
    if not subscriptions:
        return []
    billed_before = set(
        InvoiceLine.objects.filter(
            any_of("subscription_id", [subscription.pk for subscription in subscriptions]),
            kind=InvoiceLine.Kind.RECURRING,
            period_start__in={subscription.billed_through for subscription in subscriptions},
        ).values_list("subscription_id", "period_start")
    )
    prices: dict[tuple[int, str, int, date], Price | None] = {}
    now = clock.now()
    renewed, invoices, audits = [], [], []
    for subscription in subscriptions:
        start = subscription.billed_through
        assert start is not None  # noqa: S101 - the locking query says so
        until = state.cadence(subscription).containing(start).end
        if until <= day or (subscription.pk, start) in billed_before:
            continue  # several periods behind, or billed oddly before: one family at a time
        key = (
            subscription.phase_id,
            subscription.currency,
            subscription.price_list_id,
            subscription.pricing_date,
        )
        if key not in prices:
            try:
                prices[key] = state.phase_price(subscription, subscription.phase)
            except ApplicationError:
                prices[key] = None  # no price: left to family_process, which records why
        if prices[key] is None:
            continue
        laid_out = [
            state.span(
                subscription,
                subscription.phase,
                subscription.phase_started_on,
                None,
                price=prices[key],
            )
        ]
        lines = state.charge_specs(
            subscription, start, until, laid_out=laid_out, billed_before=False
        )
        before = audit_snapshot(subscription)
        # What `transitions.step` does at a period end, for a subscription with nothing else
        # due: usage (none) closed, the next period billed in advance.
        if subscription.usage_billed_through is None or subscription.usage_billed_through < start:
            subscription.usage_billed_through = start
        subscription.billed_through = until
        subscription.current_period_start = start
        subscription.current_period_end = until
        subscription.next_transition_on = state.next_transition(subscription, pending=[])
        subscription.updated_at = now
        audits.append(
            AuditSpec(
                "subscription.advance",
                subscription,
                before=before,
                after=audit_snapshot(subscription),
            )
        )
        invoices.append(
            InvoiceSpec(
                customer=subscription.customer,
                currency=subscription.currency,
                billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
                lines=lines,
            )
        )
        renewed.append(subscription)
    if not renewed:
        return []
    update_rows(renewed, _RENEWAL_FIELDS)
    event_emit_bulk(
        events=[
            EventSpec(
                type=EventType.SUBSCRIPTION_RENEWED,
                payload=subscription_payload(subscription),
                customer_id=subscription.customer_id,
            )
            for subscription in renewed
        ]
    )
    audit_record_bulk(actor=actor, records=audits)
    invoices_issue(invoices=invoices, actor=actor)
    return renewed


_CUSTOMER_FIELDS = ("currency", "country", "region", "autocharge")
_RENEWAL_FIELDS = [
    "usage_billed_through",
    "billed_through",
    "current_period_start",
    "current_period_end",
    "next_transition_on",
    "updated_at",
]
