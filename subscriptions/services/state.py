"""What every lifecycle service shares: locking, the timeline, prices, spans and line specs.

The invariant kept here: `billed_through` is the first day whose recurring fee is not yet on an
invoice. Billing a range [a, b) is only done with a == billed_through (charges) or with the
range being given back first (credits of [D, billed_through)), always under the row lock.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Q

from billing.models import Invoice, InvoiceLine
from billing.services import LineSpec, invoice_create
from catalog.models import Bundle, Plan, PlanPhase, Price
from catalog.selectors import price_for
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError, ValidationError
from core.money import DECIMAL_PLACES
from core.periods import add_interval
from core.services import audit_record, audit_snapshot
from customers.models import Customer
from subscriptions.models import ScheduledChange, Subscription, SubscriptionEvent
from subscriptions.services import webhooks
from subscriptions.services.schedule import Cadence, Slice, Span, slices

ENDED = Subscription.Status.CANCELED
RUNNING = (Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)
_UNIT_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)


@dataclass(frozen=True)
class LifecycleResult:
    """What a lifecycle service did: the subscription as it is now and the invoice it issued."""

    subscription: Subscription
    invoice: Invoice | None = None


# --- locking and reading --------------------------------------------------------------------


# Locking queries read the subscription table alone: with joined tables, PostgreSQL re-checks
# the join against the *old* related rows when a concurrent writer changed the foreign key (a
# plan change), and the row silently drops out of the result.


def lock(subscription_id: int) -> Subscription:
    """The subscription row, locked until the transaction ends, re-read under the lock."""
    found = Subscription.objects.select_for_update(of=("self",)).filter(pk=subscription_id).first()
    if found is None:
        raise NotFoundError(
            f"No such subscription: {subscription_id}.", code="subscription_not_found"
        )
    return found


def lock_family(root_ids: Iterable[int], group_ids: Iterable[int]) -> list[Subscription]:
    """Lock subscriptions billed together (a bundle's group, a base and its add-ons), in pk
    order so two lockers never wait on each other in a circle."""
    roots = Q(pk__in=list(root_ids)) | Q(group_id__in=list(group_ids))
    base_ids = list(Subscription.objects.filter(roots).values_list("pk", flat=True))
    ids = sorted(
        {
            *base_ids,
            *Subscription.objects.filter(parent_id__in=base_ids).values_list("pk", flat=True),
        }
    )
    return list(
        Subscription.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
    )


def lock_with_addons(subscription_id: int) -> tuple[Subscription, list[Subscription]]:
    """A base subscription and its running add-ons, locked in pk order (an add-on is younger)."""
    base = lock(subscription_id)
    addons = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(parent_id=base.pk)
        .exclude(status=ENDED)
        .order_by("pk")
    )
    return base, addons


def require_not_ended(subscription: Subscription) -> None:
    if subscription.status == ENDED:
        raise ConflictError(
            f"Subscription {subscription.pk} has ended; reactivate it instead.",
            code="subscription_ended",
        )


def cadence(subscription: Subscription, plan: Plan | None = None) -> Cadence:
    if subscription.billing_anchor is None:
        raise ValueError("a subscription without an anchor has no billing periods")
    return Cadence(
        subscription.billing_anchor, (plan or subscription.plan).interval, subscription.billing_day
    )


def phase_price(subscription: Subscription, phase: PlanPhase, *, on: date | None = None) -> Price:
    """The price version of `phase` the subscription pays (its pricing date: grandfathering)."""
    price = price_for(
        phase=phase,
        currency=subscription.currency,
        price_list=subscription.price_list,
        on=on or subscription.pricing_date,
    )
    if price is None:
        raise ValidationError(
            f"Plan {phase.plan.code} has no price in {subscription.currency}.",
            code="currency_mismatch",
            param="plan",
        )
    return price


def unit_amount(subscription: Subscription, price: Price) -> Decimal:
    """Per-unit amount per full period: the bundle share, the bundle discount, or the price."""
    if subscription.unit_amount is not None:
        return subscription.unit_amount
    amount = price.amount
    if subscription.group_id is not None:
        bundle = subscription.group.bundle  # type: ignore[union-attr]
        if bundle.pricing == Bundle.Pricing.PERCENT_DISCOUNT and bundle.discount_percent:
            amount = (amount * (100 - bundle.discount_percent) / 100).quantize(
                _UNIT_QUANTUM, rounding=ROUND_HALF_UP
            )
    return amount


def following_phases(subscription: Subscription) -> list[PlanPhase]:
    """The plan's phases after the current one. After a plan change during a trial, the
    current phase is the old plan's trial: the new plan then goes on after the trial with its
    own paid phases."""
    current = subscription.phase
    phases = list(subscription.plan.phases.order_by("sequence"))
    if current.plan_id != subscription.plan_id:
        return [p for p in phases if p.kind != PlanPhase.Kind.TRIAL]
    return [p for p in phases if p.sequence > current.sequence]


def spans(subscription: Subscription) -> list[Span]:
    """The subscription's phases laid out in time, from its current phase on."""
    current = subscription.phase
    renews = current.kind == PlanPhase.Kind.FIXED_TERM and current.renews
    out = [
        span(
            subscription,
            current,
            subscription.phase_started_on,
            None if renews else subscription.phase_ends_on,
        )
    ]
    if out[0].end is None:
        return out
    cursor = out[0].end
    for phase in following_phases(subscription):
        duration = phase.duration
        end = None if duration is None or phase.renews else add_interval(cursor, duration)
        out.append(span(subscription, phase, cursor, end))
        if end is None:
            break
        cursor = end
    return out


def span(
    subscription: Subscription,
    phase: PlanPhase,
    start: date,
    end: date | None,
    *,
    price: Price | None = None,
) -> Span:
    """The phase over [start, end); `price`: its price version when the caller has read it."""
    if phase.kind == PlanPhase.Kind.TRIAL:
        return Span(start, end, Decimal(0), billable=False, phase_id=phase.pk, label="trial")
    price = price or phase_price(subscription, phase)
    return Span(
        start,
        end,
        unit_amount(subscription, price),
        phase_id=phase.pk,
        price_id=price.pk,
        label=phase.kind,
    )


def first_paid_steps(plan: Plan, *, trial: bool) -> list[PlanPhase]:
    phases = list(plan.phases.order_by("sequence"))
    if not trial:
        phases = [p for p in phases if p.kind != PlanPhase.Kind.TRIAL]
    return phases


def is_addon_of(base_plan: Plan, plan: Plan) -> bool:
    return Plan.objects.filter(pk=base_plan.pk, addons__pk=plan.pk).exists()


def with_changes(subscription: Subscription, **changes: Any) -> Subscription:
    """An unsaved copy with some fields changed: to price a state without writing it."""
    clone = copy.copy(subscription)
    for field, value in changes.items():
        setattr(clone, field, value)
    return clone


# --- what to bill ---------------------------------------------------------------------------


def terminal_end(subscription: Subscription) -> date | None:
    """The day a fixed term that does not renew ends the subscription; None if open-ended."""
    return spans(subscription)[-1].end


def bill_until(subscription: Subscription, start: date) -> date:
    """The end of the period containing `start`, cut at the end of a term that does not renew."""
    end = cadence(subscription).containing(start).end
    terminal = terminal_end(subscription)
    if terminal is not None:
        end = min(end, max(terminal, start))
    return end


def coupon_id_for(subscription: Subscription, piece: Slice) -> int | None:
    # .all(): a batch's prefetch when there is one
    for discount in sorted(subscription.discounts.all(), key=lambda d: d.pk):
        if discount.starts_on <= piece.start and (
            discount.ends_on is None or piece.period.start < discount.ends_on
        ):
            return discount.coupon_id
    return None


def _describe(subscription: Subscription, plan: Plan, prefix: str = "") -> str:
    quantity = f"{subscription.quantity} x " if subscription.quantity != 1 else ""
    return f"{prefix}{quantity}{plan.name}"[:300]


def charge_specs(
    subscription: Subscription,
    start: date,
    end: date,
    *,
    kind: str | None = None,
    laid_out: list[Span] | None = None,
    billed_before: bool | None = None,
) -> list[LineSpec]:
    """Lines charging [start, end) in advance: `recurring` for a never billed period start,
    `proration_charge` for a change or for days billed before and credited since.

    A batch passes what it has read for many subscriptions at once: the spans
    (`laid_out`) and whether a recurring line was ever billed from `start` on.
    """
    out = []
    for piece in slices(cadence(subscription), laid_out or spans(subscription), start, end):
        line_kind = kind or InvoiceLine.Kind.RECURRING
        if line_kind == InvoiceLine.Kind.RECURRING and (
            billed_before
            if billed_before is not None
            else _recurring_billed(subscription, piece.start)
        ):
            line_kind = InvoiceLine.Kind.PRORATION_CHARGE
        prefix = "Remaining time on " if line_kind == InvoiceLine.Kind.PRORATION_CHARGE else ""
        out.append(
            _spec(
                subscription, piece, line_kind, _describe(subscription, subscription.plan, prefix)
            )
        )
    return out


def credit_specs(subscription: Subscription, start: date, end: date) -> list[LineSpec]:
    """Lines giving back [start, end) at what it was billed (net of the coupon it carried)."""
    return [
        _spec(
            subscription,
            piece,
            InvoiceLine.Kind.PRORATION_CREDIT,
            _describe(subscription, subscription.plan, "Unused time on "),
        )
        for piece in slices(cadence(subscription), spans(subscription), start, end)
    ]


def _spec(subscription: Subscription, piece: Slice, kind: str, description: str) -> LineSpec:
    return LineSpec(
        kind=kind,
        description=description,
        unit_amount=piece.span.unit_amount,
        quantity=Decimal(subscription.quantity),
        period_start=piece.start,
        period_end=piece.end,
        proration=piece.proration,
        subscription_id=subscription.pk,
        plan_id=subscription.plan_id,
        price_id=piece.span.price_id,
        coupon_id=coupon_id_for(subscription, piece),
    )


def _recurring_billed(subscription: Subscription, start: date) -> bool:
    if subscription.pk is None:
        return False
    return InvoiceLine.objects.filter(
        subscription_id=subscription.pk, kind=InvoiceLine.Kind.RECURRING, period_start=start
    ).exists()


def setup_fee_specs(subscription: Subscription) -> list[LineSpec]:
    """The one-time fee of the first paid phase, once, with the first paid period."""
    if subscription.setup_fee_billed:
        return []
    paid = next((s for s in spans(subscription) if s.billable), None)
    if paid is None or paid.price_id is None:
        return []
    price = Price.objects.get(pk=paid.price_id)
    if not price.setup_fee:
        return []
    return [
        LineSpec(
            kind=InvoiceLine.Kind.FIXED_FEE,
            description=f"One-time fee: {subscription.plan.name}"[:300],
            unit_amount=price.setup_fee,
            subscription_id=subscription.pk,
            plan_id=subscription.plan_id,
            price_id=price.pk,
        )
    ]


def usage_specs(subscription: Subscription, start: date | None, end: date) -> list[LineSpec]:
    """Metered usage of [start, end), billed in arrears, from the usage module's hook."""
    if start is None or start >= end:
        return []
    if importlib.util.find_spec("subscriptions.usage") is None:
        return []
    from subscriptions import usage  # the usage module is built beside this one

    hook = getattr(usage, "usage_line_specs", None)
    if hook is None:
        return []
    return list(hook(subscription=subscription, period_start=start, period_end=end))


def close_usage(subscription: Subscription, end: date) -> list[LineSpec]:
    lines = usage_specs(subscription, subscription.usage_billed_through, end)
    if subscription.usage_billed_through is None or subscription.usage_billed_through < end:
        subscription.usage_billed_through = end
    return lines


def issue_invoice(
    *,
    customer: Customer,
    currency: str,
    billing_reason: str,
    lines: Sequence[LineSpec],
    actor: Actor,
) -> Invoice | None:
    if not lines:
        return None
    return invoice_create(
        customer=customer,
        currency=currency,
        billing_reason=billing_reason,
        lines=list(lines),
        actor=actor,
    )


# --- the timeline, the audit log, the next due day ------------------------------------------


def record_event(
    subscription: Subscription,
    kind: str,
    *,
    actor: Actor,
    effective_on: date | None = None,
    data: dict[str, Any] | None = None,
) -> SubscriptionEvent:
    webhooks.note_timeline(subscription, kind)  # emitted by `save`, with the final state
    return SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=kind,
        occurred_at=clock.now(),
        effective_on=effective_on or clock.today(),
        actor_type=actor.type,
        actor_label=actor.label[:200],
        data=_json(data or {}),
    )


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def save(
    subscription: Subscription, *, actor: Actor, action: str, before: dict[str, Any] | None
) -> None:
    """Persist the subscription with its next due day and audit the change."""
    subscription.next_transition_on = next_transition(subscription)
    subscription.updated_at = clock.now()
    subscription.save()
    webhooks.emit_noted(subscription)
    audit_record(
        actor=actor,
        action=action,
        instance=subscription,
        before=before,
        after=audit_snapshot(subscription),
    )


def pending_changes(subscription: Subscription) -> list[ScheduledChange]:
    if subscription.pk is None:
        return []
    return list(
        subscription.scheduled_changes.filter(status=ScheduledChange.Status.PENDING).order_by(
            "effective_on", "id"
        )
    )


def next_transition(
    subscription: Subscription, pending: list[ScheduledChange] | None = None
) -> date | None:
    """The earliest day something is due: start, renewal, phase end, change, resume.
    `pending`: the pending changes when the caller has read them."""
    status = subscription.status
    if status == ENDED:
        return None
    if status == Subscription.Status.FUTURE:
        return subscription.start_on
    if pending is None:
        pending = pending_changes(subscription)
    candidates = [c.effective_on for c in pending]
    if status == Subscription.Status.PAUSED:
        # A phase still moves on while paused (a fixed term ends even then); billing waits.
        candidates += [subscription.pause_resumes_on, subscription.phase_ends_on]  # type: ignore[list-item]
    else:
        candidates += [subscription.billed_through, subscription.phase_ends_on]  # type: ignore[list-item]
    due = [day for day in candidates if day is not None]
    return min(due) if due else None
