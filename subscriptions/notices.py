"""Renewal, trial-ending and price-change notices: who is told what, and on which day.

The rules (settings in config/settings.py, "Notices"):

- renewal notice: RENEWAL_NOTICE_DAYS before a renewal, by the plan's billing interval (year
  30, quarter 7, month/week/day none by default), or `plan.metadata["renewal_notice_days"]`.
  A fixed term that renews by itself gets one too, before the term's end, by the term's length.
  None for a subscription that will not renew: canceled, canceling at the period end, pausing
  then, or at the end of a term that does not renew.
- trial-ending notice: TRIAL_ENDING_NOTICE_DAYS (3) before a trial ends; trials longer than
  31 days use LONG_TRIAL_NOTICE_DAYS (7, within 3 to 21); `plan.metadata
  ["trial_ending_notice_days"]` overrides both. None for a trial canceled at its end.
- price-change notice: PRICE_CHANGE_NOTICE_DAYS (30) before the renewal that first bills a new
  price per period: an intro (discount) phase ending, or a plan or quantity change scheduled
  for the period end. Existing subscribers keep the catalog price version they signed up at
  (grandfathering) and the lifecycle has no price migrations yet, so a new catalog version
  reaches a subscriber only through a plan change, whose new price is announced here.

The daily work for day D sends every notice whose send day (event - notice days) is D or
earlier and whose event is after D: a run that missed days catches up, and nothing is announced
once it has happened. A notice's dedupe key, `<kind>:<subscription>:<event date>`, makes it go
out at most once per subscription, period and kind, however often or concurrently the work
runs (core.notifications claims the key in the database before sending).

A base subscription and its add-ons, or a bundle's subscriptions, are billed on one invoice:
they get one notice, about the base (a bundle: its first subscription), with their total.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Q

from billing.models import InvoiceLine
from billing.services import InvoicePreview
from catalog.models import Plan, PlanPhase
from core import clock
from core.errors import ApplicationError
from core.money import format_amount
from core.notifications.selectors import notification_dedupe_keys_taken
from core.notifications.services import notification_send
from core.periods import Interval
from core.webhooks.events import EventType
from core.webhooks.services import event_emit
from subscriptions.models import ScheduledChange, Subscription
from subscriptions.services import state, subscription_next_invoice_preview
from subscriptions.webhook_payloads import subscription_payload

logger = logging.getLogger(__name__)

RENEWAL = "renewal_notice"
TRIAL_ENDING = "trial_ending"
PRICE_CHANGE = "price_change"

# Trials longer than this many days get their notice LONG_TRIAL_NOTICE_DAYS before the end.
LONG_TRIAL_DAYS = 31
RENEWAL_DAYS_KEY = "renewal_notice_days"
TRIAL_DAYS_KEY = "trial_ending_notice_days"

_RUNNING = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
_CHARGE_KINDS = (InvoiceLine.Kind.RECURRING, InvoiceLine.Kind.PRORATION_CHARGE)
_CHANGES = (ScheduledChange.Kind.CHANGE_PLAN, ScheduledChange.Kind.CHANGE_QUANTITY)
_COUNTED_AS = {
    RENEWAL: "renewal_notices",
    TRIAL_ENDING: "trial_ending_notices",
    PRICE_CHANGE: "price_change_notices",
}


@dataclass(frozen=True)
class _Due:
    """A notice whose day has come, before its (costlier) content is worked out."""

    kind: str
    subscription: Subscription
    event_on: date
    term: bool = False  # a renewal notice about a fixed term, not a billing period

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subscription.pk}:{self.event_on.isoformat()}"


@dataclass
class _Family:
    """The subscriptions billed together with `root`, and the next invoice they will get."""

    root: Subscription
    members: list[Subscription]
    previews: list[InvoicePreview] = field(default_factory=list)

    @property
    def lines(self) -> list[InvoiceLine]:
        return [line for preview in self.previews for line in preview.lines]

    def charge(self) -> Decimal:
        """What the next invoice charges for the subscriptions (usage, unknown yet, aside)."""
        return sum(
            (line.total for line in self.lines if line.kind != InvoiceLine.Kind.USAGE),
            Decimal(0),
        )

    def renews(self) -> bool:
        return any(line.kind in _CHARGE_KINDS for line in self.lines)

    def metered(self) -> bool:
        return any(member.plan.meters.exists() for member in self.members)


# --- the daily work ---------------------------------------------------------------------------


def notices_process_day(day: date) -> dict[str, int]:
    """Send the notices due by `day` (see the module's rules). A notice that cannot be worked
    out is logged and counted as failed; the others go on."""
    counts: Counter[str] = Counter()
    due = [*_trials_ending(day), *_renewals(day), *_price_changes(day)]
    taken = notification_dedupe_keys_taken(keys=[notice.key for notice in due])
    seen: set[str] = set()
    for notice in due:
        if notice.key in taken or notice.key in seen:
            continue
        seen.add(notice.key)
        try:
            if _send(notice):
                counts[_COUNTED_AS[notice.kind]] += 1
        except (ApplicationError, DatabaseError, RuntimeError, ValueError):
            # A subscription in a state the pricing refuses must not stop the other notices.
            logger.exception("notice %s could not be sent on %s", notice.key, day)
            counts["failed"] += 1
    return {name: value for name, value in sorted(counts.items()) if value}


def register() -> None:
    """Run the notices each day after the lifecycle's own work (SubscriptionsConfig.ready)."""
    clock.register_daily_work("subscription_notices", notices_process_day)


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def notices_send_today() -> dict[str, int]:
    """Every hour (django-celery-beat): the notices due today. Lives here rather than in a
    tasks module because this module is what registers the notices (imported at startup)."""
    return notices_process_day(clock.today())


# --- the rules: which notices are due ---------------------------------------------------------


def notice_days_for_interval(interval: Interval) -> int:
    """RENEWAL_NOTICE_DAYS for an interval: by the longest unit it reaches (6 months count as
    a quarter, 2 years as a year, 2 weeks as a week)."""
    months = interval.months()
    if months is not None:
        unit = "year" if months >= 12 else "quarter" if months >= 3 else "month"
    else:
        unit = "week" if (interval.days() or 0) >= 7 else "day"
    return int(settings.RENEWAL_NOTICE_DAYS[unit])


def renewal_notice_days(plan: Plan) -> int:
    override = _metadata_days(plan, RENEWAL_DAYS_KEY)
    return override if override is not None else notice_days_for_interval(plan.interval)


def trial_ending_notice_days(plan: Plan, *, trial_days: int) -> int:
    override = _metadata_days(plan, TRIAL_DAYS_KEY)
    if override is not None:
        return override
    if trial_days > LONG_TRIAL_DAYS:
        return int(settings.LONG_TRIAL_NOTICE_DAYS)
    return int(settings.TRIAL_ENDING_NOTICE_DAYS)


def _metadata_days(plan: Plan, key: str) -> int | None:
    value = plan.metadata.get(key) if isinstance(plan.metadata, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        logger.warning("plan %s: metadata %s=%r is not a number of days", plan.code, key, value)
        return None
    return value


def _plans_by_renewal_days() -> dict[int, list[int]]:
    """The ids of the plans with a renewal notice, by its number of days."""
    by_days: dict[int, list[int]] = {}
    plans = Plan.objects.only("pk", "billing_interval", "interval_count", "metadata", "code")
    for plan in plans:
        days = renewal_notice_days(plan)
        if days:
            by_days.setdefault(days, []).append(plan.pk)
    return by_days


def _overrides(key: str) -> list[int]:
    plans = Plan.objects.filter(metadata__has_key=key)
    return [days for plan in plans if (days := _metadata_days(plan, key)) is not None]


def _notified(queryset: Any) -> Any:
    """Subscriptions that get notices: bases, running or trialing, not canceling."""
    return queryset.filter(parent__isnull=True, cancel_at_period_end=False).select_related(
        "plan__product", "phase", "customer"
    )


def _trials_ending(day: date) -> Iterator[_Due]:
    horizon = max(
        [
            settings.TRIAL_ENDING_NOTICE_DAYS,
            settings.LONG_TRIAL_NOTICE_DAYS,
            *_overrides(TRIAL_DAYS_KEY),
        ]
    )
    trials = _notified(
        Subscription.objects.filter(
            status=Subscription.Status.TRIALING,
            phase__kind=PlanPhase.Kind.TRIAL,
            phase_ends_on__gt=day,
            phase_ends_on__lte=day + timedelta(days=horizon),
        )
    ).order_by("pk")
    for subscription in trials:
        ends = subscription.phase_ends_on
        assert ends is not None  # noqa: S101 - filtered above
        trial_days = (ends - subscription.phase_started_on).days
        days = trial_ending_notice_days(subscription.plan, trial_days=trial_days)
        if days and ends - timedelta(days=days) <= day and _leads(subscription):
            yield _Due(TRIAL_ENDING, subscription, ends)


def _renewals(day: date) -> Iterator[_Due]:
    horizon = max([*settings.RENEWAL_NOTICE_DAYS.values(), *_overrides(RENEWAL_DAYS_KEY)])
    if not horizon:
        return
    window = (day, day + timedelta(days=horizon))
    running = Subscription.objects.filter(status__in=_RUNNING)
    # Only the plans that have a notice, each with its own window, so that a day's query
    # returns the renewals due rather than every monthly subscription renewing within a month.
    due = Q(pk__in=[])
    for days, plan_ids in _plans_by_renewal_days().items():
        due |= Q(
            plan_id__in=plan_ids,
            billed_through__gt=day,
            billed_through__lte=day + timedelta(days=days),
        )
    for subscription in _notified(running.filter(due)).order_by("pk"):
        renews_on = subscription.billed_through
        assert renews_on is not None  # noqa: S101 - filtered above
        if _leads(subscription):
            yield _Due(RENEWAL, subscription, renews_on)
    terms = _notified(
        running.filter(
            phase__kind=PlanPhase.Kind.FIXED_TERM,
            phase__renews=True,
            phase_ends_on__gt=window[0],
            phase_ends_on__lte=window[1],
        )
    ).order_by("pk")
    for subscription in terms:
        ends = subscription.phase_ends_on
        term = subscription.phase.duration
        if ends is None or term is None:
            continue
        override = _metadata_days(subscription.plan, RENEWAL_DAYS_KEY)
        days = override if override is not None else notice_days_for_interval(term)
        if days and ends - timedelta(days=days) <= day and _leads(subscription):
            # On a day that is also a billing renewal, the key is the same: one notice.
            yield _Due(RENEWAL, subscription, ends, term=True)


def _price_changes(day: date) -> Iterator[_Due]:
    days = settings.PRICE_CHANGE_NOTICE_DAYS
    if not days:
        return
    pending = Q(status=ScheduledChange.Status.PENDING, kind__in=_CHANGES)
    with_changes = ScheduledChange.objects.filter(pending)
    candidates = _notified(
        Subscription.objects.filter(
            status__in=_RUNNING,
            billed_through__gt=day,
            billed_through__lte=day + timedelta(days=days),
        ).filter(
            Q(phase__kind=PlanPhase.Kind.DISCOUNT)
            | Q(pk__in=with_changes.values("subscription_id"))
            | Q(addons__phase__kind=PlanPhase.Kind.DISCOUNT)
            | Q(addons__pk__in=with_changes.values("subscription_id"))
        )
    ).distinct()
    for subscription in candidates.order_by("pk"):
        assert subscription.billed_through is not None  # noqa: S101 - filtered above
        if _leads(subscription) and _may_change_price(subscription):
            yield _Due(PRICE_CHANGE, subscription, subscription.billed_through)


def _leads(subscription: Subscription) -> bool:
    """A bundle's subscriptions get one notice: its first running subscription's."""
    if subscription.group_id is None:
        return True
    first = (
        Subscription.objects.filter(group_id=subscription.group_id)
        .exclude(status=Subscription.Status.CANCELED)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return first == subscription.pk


def _may_change_price(subscription: Subscription) -> bool:
    """Cheap pre-check before pricing the renewal: a change is scheduled by then, or an intro
    phase ends before the end of the period that the renewal bills."""
    renews_on = subscription.billed_through
    assert renews_on is not None  # noqa: S101 - checked by the caller
    for member in _members(subscription):
        if any(c.kind in _CHANGES and c.effective_on <= renews_on for c in _pending(member)):
            return True
        if member.phase.kind == PlanPhase.Kind.DISCOUNT and member.phase_ends_on is not None:
            next_period_end = state.cadence(member).containing(renews_on).end
            if member.phase_ends_on < next_period_end:
                return True
    return False


def _pending(subscription: Subscription) -> list[ScheduledChange]:
    return state.pending_changes(subscription)


def _members(root: Subscription) -> list[Subscription]:
    running = Subscription.objects.exclude(status=Subscription.Status.CANCELED).select_related(
        "plan", "phase"
    )
    if root.group_id is not None:
        return list(running.filter(group_id=root.group_id).order_by("pk"))
    return [root, *running.filter(parent_id=root.pk).order_by("pk")]


def _family(root: Subscription) -> _Family | None:
    """The family and its next invoice; None when it will not be billed again (ending,
    pausing, or its renewal day is not the one the notice is about)."""
    members = _members(root)
    # The base's preview covers its add-ons; a bundle's subscriptions each have their own.
    heads = members if root.group_id is not None else [root]
    family = _Family(root=root, members=members)
    for head in heads:
        upcoming = subscription_next_invoice_preview(subscription=head)
        if upcoming is None:
            return None
        if upcoming.invoice is not None:
            family.previews.append(upcoming.invoice)
    return family


# --- the content of each notice ---------------------------------------------------------------


def _send(notice: _Due) -> bool:
    builders = {
        RENEWAL: _renewal_content,
        TRIAL_ENDING: _trial_content,
        PRICE_CHANGE: _price_content,
    }
    content = builders[notice.kind](notice)
    if content is None:
        return False
    subject, context = content
    subscription = notice.subscription
    customer = subscription.customer
    context = {
        "customer_name": customer.name,
        "plan_name": subscription.plan.name,
        "product_name": subscription.plan.product.name,
        "subscription_id": subscription.pk,
        "event_on": notice.event_on,
        **context,
    }
    sent = notification_send(
        kind=notice.kind,
        dedupe_key=notice.key,
        to=customer.email,
        subject=subject,
        template=notice.kind,
        context=context,
        customer_id=customer.pk,
        related=subscription,
    )
    if sent is not None and notice.kind == TRIAL_ENDING:
        # Announced once, with the notice: the claimed dedupe key above is the "once".
        with transaction.atomic():
            event_emit(
                type=EventType.SUBSCRIPTION_TRIAL_WILL_END,
                payload=subscription_payload(subscription),
                customer_id=customer.pk,
            )
    return sent is not None


def _renewal_content(notice: _Due) -> tuple[str, dict[str, Any]] | None:
    subscription = notice.subscription
    family = _family(subscription)
    if family is None or not family.renews():
        return None
    charged_on = subscription.billed_through
    if not notice.term and charged_on != notice.event_on:
        return None  # the renewal moved since the notice was found due
    interval = subscription.plan.interval
    term = subscription.phase.duration if notice.term else None
    context = {
        "renews_on": notice.event_on,
        "renews_for": f"term of {_interval_label(term)}" if term else _interval_label(interval),
        "amount": _money(family.charge(), subscription.currency),
        "charged_on": charged_on,
        # A term may end between two billing days: then the next charge comes later.
        "charged_on_renewal": charged_on == notice.event_on,
        "interval": _interval_label(interval),
        "metered": family.metered(),
        "addons": [m.plan.name for m in family.members if m.pk != subscription.pk],
    }
    subject = f"Your {subscription.plan.name} subscription renews on {_long_date(notice.event_on)}"
    return subject, context


def _trial_content(notice: _Due) -> tuple[str, dict[str, Any]] | None:
    subscription = notice.subscription
    family = _family(subscription)
    if family is None or not family.renews():
        return None
    interval = subscription.plan.interval
    context = {
        "trial_ends_on": notice.event_on,
        "amount": _money(family.charge(), subscription.currency),
        "charged_on": subscription.billed_through,
        "interval": _interval_label(interval),
        "metered": family.metered(),
    }
    subject = f"Your {subscription.plan.name} trial ends on {_long_date(notice.event_on)}"
    return subject, context


def _price_content(notice: _Due) -> tuple[str, dict[str, Any]] | None:
    subscription = notice.subscription
    if subscription.billed_through != notice.event_on:
        return None
    family = _family(subscription)
    if family is None:
        return None
    plan_ids = {line.plan_id for line in family.lines if line.plan_id is not None}
    plans = {plan.pk: plan for plan in Plan.objects.filter(pk__in=plan_ids)}
    changes: list[dict[str, Any]] = []
    for member in family.members:
        before = _price_now(member)
        after = _price_next(member, family.lines, plans)
        if before is None or after is None:
            continue
        (plan_before, amount_before), (plan_after, amount_after, from_day) = before, after
        if plan_before.pk == plan_after.pk and amount_before == amount_after:
            continue
        changes.append(
            {
                "plan_before": plan_before.name,
                "plan_after": plan_after.name,
                "amount_before": _money(amount_before, member.currency),
                "interval_before": _interval_label(plan_before.interval),
                "amount_after": _money(amount_after, member.currency),
                "interval_after": _interval_label(plan_after.interval),
                "effective_on": from_day,
                "reason": _reason(member, plan_before, plan_after),
            }
        )
    if not changes:
        return None
    context = {
        "renews_on": notice.event_on,
        "changes": changes,
        "amount": _money(family.charge(), subscription.currency),
        "metered": family.metered(),
    }
    subject = (
        f"Your {subscription.plan.name} price changes on {_long_date(changes[0]['effective_on'])}"
    )
    return subject, context


def _price_now(member: Subscription) -> tuple[Plan, Decimal] | None:
    """The list price per period the member pays now (its last billed day's)."""
    if member.billed_through is None:
        return None
    last_day = member.billed_through - timedelta(days=1)
    span = next((s for s in state.spans(member) if last_day in s), None)
    if span is None or not span.billable:
        return None
    return member.plan, span.unit_amount * member.quantity


def _price_next(
    member: Subscription, lines: list[InvoiceLine], plans: dict[int, Plan]
) -> tuple[Plan, Decimal, date] | None:
    """The list price per period the renewal moves the member to: that of the last slice of
    the period it bills (a phase ending mid-period changes the price from that day)."""
    charges = [
        line
        for line in lines
        if line.subscription_id == member.pk
        and line.kind in _CHARGE_KINDS
        and line.period_start is not None
        and line.plan_id in plans
    ]
    if not charges:
        return None
    last = max(charges, key=lambda line: line.period_start or date.min)
    if last.period_start is None or last.plan_id is None:
        return None
    return plans[last.plan_id], last.unit_amount * last.quantity, last.period_start


def _reason(member: Subscription, plan_before: Plan, plan_after: Plan) -> str:
    if plan_before.pk != plan_after.pk:
        return "plan_change"
    if any(c.kind == ScheduledChange.Kind.CHANGE_QUANTITY for c in _pending(member)):
        return "quantity_change"
    if member.phase.kind == PlanPhase.Kind.DISCOUNT:
        return "intro_price_ends"
    return "price_change"


def _money(amount: Decimal, currency: str) -> str:
    return f"{format_amount(amount, currency)} {currency}"


def _long_date(day: date) -> str:
    return f"{day:%B} {day.day}, {day.year}"


def _interval_label(interval: Interval) -> str:
    unit = str(interval.unit)
    return unit if interval.count == 1 else f"{interval.count} {unit}s"
