"""Plan and quantity changes, their previews, and the preview of the next renewal invoice.

A change is first *planned* from the locked (or, for a preview, merely read) subscription: the
lines it would invoice now and the fields it would set. A preview stops there and prices the
lines with billing's `invoice_preview`, so it writes nothing; the service applies the plan.

Defaults (DESIGN.md section 5): a higher monthly-normalized price is an upgrade, applied at
once with a credit for the unused days of the old plan and a charge for the new plan to the end
of its period from the same anchor; anything else waits for the period end, without credit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction

from billing.models import Invoice, InvoiceLine
from billing.services import InvoicePreview, LineSpec, invoice_preview
from catalog.models import Plan, PlanPhase
from catalog.selectors import price_for
from core import clock
from core.actors import Actor
from core.errors import ConflictError, ValidationError
from core.periods import add_interval
from core.services import audit_snapshot
from subscriptions.models import ScheduledChange, Subscription, SubscriptionEvent
from subscriptions.services import state
from subscriptions.services.lifecycle import (
    Policy,
    _undo_pending,
    clean_policy,
    clean_quantity,
    require_plan_available,
)
from subscriptions.services.schedule import calendar_anchor, monthly_normalized
from subscriptions.services.state import LifecycleResult

Kind = SubscriptionEvent.Kind
Status = Subscription.Status
ChangeKind = ScheduledChange.Kind


@dataclass
class _Change:
    kind: str  # ScheduledChange.Kind: change_plan or change_quantity
    policy: str
    effective_on: date
    plan: Plan
    quantity: int
    lines: list[LineSpec] = field(default_factory=list)
    fields: dict[str, Any] | None = None  # set now (immediate); None: scheduled


@dataclass(frozen=True)
class ChangePreview:
    """What a change would do: its policy, when, and the invoice it would issue right now."""

    policy: str
    effective_on: date
    invoice: InvoicePreview | None


@dataclass(frozen=True)
class UpcomingInvoice:
    billing_date: date
    invoice: InvoicePreview | None


# --- planning (reads only) ------------------------------------------------------------------


def _require_changeable(subscription: Subscription) -> None:
    state.require_not_ended(subscription)
    if subscription.status == Status.PAUSED:
        raise ConflictError(
            "This subscription is paused; resume it before changing it.",
            code="subscription_paused",
        )


def _current_unit(subscription: Subscription) -> Decimal:
    paid = next((s for s in state.spans(subscription) if s.billable), None)
    return paid.unit_amount if paid is not None else Decimal(0)


def _plan_change(
    subscription: Subscription,
    plan: Plan,
    quantity: int | None,
    policy: str | None,
    today: date,
) -> _Change:
    _require_changeable(subscription)
    require_plan_available(plan)
    if subscription.group_id is not None:
        raise ConflictError(
            "This subscription is part of a bundle: its plan changes with the bundle only.",
            code="bundle_component",
        )
    new_quantity = clean_quantity(subscription.quantity if quantity is None else quantity, plan)
    if plan.pk == subscription.plan_id and new_quantity == subscription.quantity:
        raise ValidationError(
            f"The subscription is already on {plan.code}.", code="plan_unchanged", param="plan"
        )
    if subscription.parent_id is not None:
        parent_plan = subscription.parent.plan  # type: ignore[union-attr]
        if not state.is_addon_of(parent_plan, plan):
            raise ValidationError(
                f"{plan.code} is not an add-on of {parent_plan.code}.",
                code="addon_not_allowed",
                param="plan",
            )
    if (
        plan.interval != subscription.plan.interval
        and subscription.addons.exclude(status=Status.CANCELED).exists()
    ):
        raise ConflictError(
            "Add-ons bill on their base's interval: remove them before changing the interval.",
            code="addon_interval_mismatch",
            param="plan",
        )
    phases = list(plan.phases.order_by("sequence"))
    for phase in phases:
        if phase.kind != PlanPhase.Kind.TRIAL and (
            price_for(
                phase=phase,
                currency=subscription.currency,
                price_list=subscription.price_list,
                on=today,
            )
            is None
        ):
            raise ValidationError(
                f"Plan {plan.code} has no price in {subscription.currency}.",
                code="currency_mismatch",
                param="plan",
            )
    final = phases[-1]
    if subscription.status in (Status.FUTURE, Status.TRIALING):
        chosen = clean_policy(policy, default=Policy.IMMEDIATE)
        if chosen == Policy.IMMEDIATE:
            fields = _replan_before_paying(subscription, plan, phases, new_quantity, today)
            return _Change(ChangeKind.CHANGE_PLAN, chosen, today, plan, new_quantity, [], fields)
        return _scheduled(ChangeKind.CHANGE_PLAN, subscription, plan, new_quantity)

    new_state = state.with_changes(
        subscription,
        plan=plan,
        phase=final,
        phase_started_on=today,
        phase_ends_on=add_interval(today, final.duration) if final.duration else None,
        pricing_date=today,
        quantity=new_quantity,
        unit_amount=None,
    )
    old_monthly = monthly_normalized(
        _current_unit(subscription) * subscription.quantity, subscription.plan.interval
    )
    new_monthly = monthly_normalized(_current_unit(new_state) * new_quantity, plan.interval)
    chosen = clean_policy(
        policy, default=Policy.IMMEDIATE if new_monthly > old_monthly else Policy.END_OF_TERM
    )
    if chosen == Policy.END_OF_TERM:
        return _scheduled(ChangeKind.CHANGE_PLAN, subscription, plan, new_quantity)
    lines = _credit_unused(subscription, today)
    until = state.bill_until(new_state, today)
    lines += state.charge_specs(new_state, today, until, kind=InvoiceLine.Kind.PRORATION_CHARGE)
    lines += state.usage_specs(subscription, subscription.usage_billed_through, today)
    fields = {
        "plan": plan,
        "phase": final,
        "phase_started_on": today,
        "phase_ends_on": new_state.phase_ends_on,
        "pricing_date": today,
        "quantity": new_quantity,
        "billed_through": until,
        "usage_billed_through": today,
        "current_period_start": today,
        "current_period_end": until,
    }
    return _Change(ChangeKind.CHANGE_PLAN, chosen, today, plan, new_quantity, lines, fields)


def _replan_before_paying(
    subscription: Subscription,
    plan: Plan,
    phases: list[PlanPhase],
    quantity: int,
    today: date,
) -> dict[str, Any]:
    """A change before the first paid day costs nothing: the new plan takes the old one's
    place. A trial under way runs to its end (the new plan's paid phases follow it)."""
    fields: dict[str, Any] = {"plan": plan, "quantity": quantity}
    trial = next((p for p in phases if p.kind == PlanPhase.Kind.TRIAL), None)
    in_trial = subscription.phase.kind == PlanPhase.Kind.TRIAL
    if subscription.status == Status.TRIALING:
        if trial is not None:
            fields["phase"] = trial
        fields["pricing_date"] = today
        return fields
    first = (
        trial
        if in_trial and trial is not None
        else next(p for p in phases if p.kind != PlanPhase.Kind.TRIAL)
    )
    start = subscription.start_on
    ends = add_interval(start, first.duration) if first.duration else None
    paid_start = ends if first.kind == PlanPhase.Kind.TRIAL and ends is not None else start
    day = subscription.billing_day if plan.interval.months() is not None else None
    fields.update(
        phase=first,
        phase_started_on=start,
        phase_ends_on=ends,
        billing_anchor=calendar_anchor(paid_start, day) if day else paid_start,
        billing_day=day,
        billed_through=paid_start,
        usage_billed_through=paid_start,
    )
    return fields


def _scheduled(kind: str, subscription: Subscription, plan: Plan, quantity: int) -> _Change:
    effective = subscription.billed_through
    assert effective is not None  # noqa: S101 - guaranteed by the state rules
    return _Change(kind, Policy.END_OF_TERM, effective, plan, quantity)


def _credit_unused(subscription: Subscription, today: date) -> list[LineSpec]:
    billed = subscription.billed_through
    if billed is None or billed <= today:
        return []
    return state.credit_specs(subscription, today, billed)


def _quantity_change(
    subscription: Subscription, quantity: int, policy: str | None, today: date
) -> _Change:
    _require_changeable(subscription)
    new_quantity = clean_quantity(quantity, subscription.plan)
    if new_quantity == subscription.quantity:
        raise ValidationError(
            f"The quantity is already {new_quantity}.",
            code="quantity_unchanged",
            param="quantity",
        )
    plan = subscription.plan
    if subscription.status in (Status.FUTURE, Status.TRIALING):
        chosen = clean_policy(policy, default=Policy.IMMEDIATE)
        if chosen == Policy.END_OF_TERM:
            return _scheduled(ChangeKind.CHANGE_QUANTITY, subscription, plan, new_quantity)
        return _Change(
            ChangeKind.CHANGE_QUANTITY,
            chosen,
            today,
            plan,
            new_quantity,
            [],
            {"quantity": new_quantity},
        )
    increase = new_quantity > subscription.quantity
    chosen = clean_policy(policy, default=Policy.IMMEDIATE if increase else Policy.END_OF_TERM)
    if chosen == Policy.END_OF_TERM:
        return _scheduled(ChangeKind.CHANGE_QUANTITY, subscription, plan, new_quantity)
    lines = _credit_unused(subscription, today)
    billed = subscription.billed_through
    if billed is not None and billed > today:
        new_state = state.with_changes(subscription, quantity=new_quantity)
        lines += state.charge_specs(
            new_state, today, billed, kind=InvoiceLine.Kind.PRORATION_CHARGE
        )
    return _Change(
        ChangeKind.CHANGE_QUANTITY,
        chosen,
        today,
        plan,
        new_quantity,
        lines,
        {"quantity": new_quantity},
    )


# --- applying -------------------------------------------------------------------------------


def _commit(subscription: Subscription, change: _Change, *, actor: Actor) -> LifecycleResult:
    if change.fields is None and any(
        pending.kind == change.kind
        and pending.effective_on == change.effective_on
        and pending.quantity == change.quantity
        and (change.kind != ChangeKind.CHANGE_PLAN or pending.plan_id == change.plan.pk)
        for pending in state.pending_changes(subscription)
    ):
        return LifecycleResult(subscription)  # the same change is already scheduled: a replay
    before = audit_snapshot(subscription)
    was = {"plan": subscription.plan.code, "quantity": subscription.quantity}
    _undo_pending(subscription, change.kind, actor=actor)  # a new change replaces a pending one
    if change.fields is None:
        ScheduledChange.objects.create(
            subscription=subscription,
            kind=change.kind,
            effective_on=change.effective_on,
            plan=change.plan if change.kind == ChangeKind.CHANGE_PLAN else None,
            quantity=change.quantity,
            created_at=clock.now(),
        )
        state.record_event(
            subscription,
            Kind.CHANGE_SCHEDULED,
            actor=actor,
            data={
                "kind": change.kind,
                "effective_on": change.effective_on,
                "before": was,
                "after": {"plan": change.plan.code, "quantity": change.quantity},
            },
        )
        state.save(subscription, actor=actor, action=f"subscription.{change.kind}", before=before)
        return LifecycleResult(subscription)
    for name, value in change.fields.items():
        setattr(subscription, name, value)
    event = Kind.PLAN_CHANGED if change.kind == ChangeKind.CHANGE_PLAN else Kind.QUANTITY_CHANGED
    state.record_event(
        subscription,
        event,
        actor=actor,
        data={
            "before": was,
            "after": {"plan": change.plan.code, "quantity": change.quantity},
            "policy": change.policy,
        },
    )
    state.save(subscription, actor=actor, action=f"subscription.{change.kind}", before=before)
    invoice = state.issue_invoice(
        customer=subscription.customer,
        currency=subscription.currency,
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_UPDATE,
        lines=change.lines,
        actor=actor,
    )
    return LifecycleResult(subscription, invoice)


def subscription_change_plan(
    *,
    subscription: Subscription,
    plan: Plan,
    actor: Actor,
    policy: str | None = None,
    quantity: int | None = None,
    preview: bool = False,
) -> LifecycleResult | ChangePreview:
    """Move to `plan` (and `quantity`): an upgrade at once, a downgrade at the period end,
    unless `policy` says otherwise. Monthly <-> annual keeps the anchor. `preview=True`
    returns what would happen and writes nothing."""
    if preview:
        return subscription_preview_change(
            subscription=subscription, plan=plan, quantity=quantity, policy=policy
        )
    today = clock.today()
    with transaction.atomic():
        locked = state.lock(subscription.pk)
        return _commit(locked, _plan_change(locked, plan, quantity, policy, today), actor=actor)


def subscription_change_quantity(
    *,
    subscription: Subscription,
    quantity: int,
    actor: Actor,
    policy: str | None = None,
    preview: bool = False,
) -> LifecycleResult | ChangePreview:
    """More seats at once (prorated), fewer at the period end, unless `policy` says otherwise."""
    if preview:
        return subscription_preview_change(
            subscription=subscription, quantity=quantity, policy=policy
        )
    today = clock.today()
    with transaction.atomic():
        locked = state.lock(subscription.pk)
        return _commit(locked, _quantity_change(locked, quantity, policy, today), actor=actor)


def _fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.select_related(
        "plan", "plan__product", "phase", "price_list", "customer"
    ).get(pk=subscription.pk)


def subscription_preview_change(
    *,
    subscription: Subscription,
    plan: Plan | None = None,
    quantity: int | None = None,
    policy: str | None = None,
) -> ChangePreview:
    """The invoice a plan or quantity change would issue right now; nothing is written."""
    current = _fresh(subscription)
    today = clock.today()
    if plan is not None:
        change = _plan_change(current, plan, quantity, policy, today)
    elif quantity is not None:
        change = _quantity_change(current, quantity, policy, today)
    else:
        raise ValidationError("Give a plan or a quantity.", code="invalid_change", param="plan")
    preview = None
    if change.lines:
        preview = invoice_preview(
            customer=current.customer,
            currency=current.currency,
            billing_reason=Invoice.BillingReason.SUBSCRIPTION_UPDATE,
            lines=change.lines,
        )
    return ChangePreview(change.policy, change.effective_on, preview)


def subscription_undo_scheduled_change(
    *, subscription: Subscription, kind: str, actor: Actor
) -> LifecycleResult:
    """Call off a pending plan change, quantity change or pause before it takes effect."""
    if kind not in ChangeKind.values:
        raise ValidationError(
            f"kind is one of {', '.join(ChangeKind.values)}.", code="invalid_kind", param="kind"
        )
    with transaction.atomic():
        base, addons = state.lock_with_addons(subscription.pk)
        state.require_not_ended(base)
        if not _undo_pending(base, kind, actor=actor):
            raise ConflictError(
                f"No {kind.replace('_', ' ')} is scheduled for this subscription.",
                code="no_pending_change",
                param="kind",
            )
        if kind == ChangeKind.PAUSE:
            for addon in addons:
                _undo_pending(addon, kind, actor=actor)
    return LifecycleResult(base)


def subscription_next_invoice_preview(*, subscription: Subscription) -> UpcomingInvoice | None:
    """A dry run of the next renewal invoice (with the base's add-ons on it): the usage of the
    closing period, the next period in advance, after the changes scheduled for that day.
    None when nothing more will be billed (ended, ending, or pausing)."""
    base = _fresh(subscription)
    if base.status == Status.CANCELED or base.cancel_at_period_end:
        return None
    members = [base, *base.addons.exclude(status=Status.CANCELED).select_related("plan", "phase")]
    day = base.pause_resumes_on if base.status == Status.PAUSED else base.billed_through
    if day is None:
        return None
    lines: list[LineSpec] = []
    for member in members:
        member_lines = _renewal_lines(member, day)
        if member_lines is None:
            return None
        lines += member_lines
    if not lines:
        return UpcomingInvoice(day, None)
    preview = invoice_preview(
        customer=base.customer,
        currency=base.currency,
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
        lines=lines,
    )
    return UpcomingInvoice(day, preview)


def _renewal_lines(subscription: Subscription, day: date) -> list[LineSpec] | None:
    projected = state.with_changes(subscription)
    for change in state.pending_changes(subscription):
        if change.effective_on > day:
            continue
        if change.kind == ChangeKind.PAUSE:
            return None
        if change.kind == ChangeKind.CHANGE_PLAN and change.plan is not None:
            final = list(change.plan.phases.order_by("sequence"))[-1]
            projected = state.with_changes(
                projected,
                plan=change.plan,
                phase=final,
                phase_started_on=day,
                phase_ends_on=add_interval(day, final.duration) if final.duration else None,
                pricing_date=day,
            )
        if change.quantity is not None:
            projected = state.with_changes(projected, quantity=change.quantity)
    lines: list[LineSpec] = []
    if subscription.status != Status.PAUSED:
        lines += state.usage_specs(subscription, subscription.usage_billed_through, day)
    start = max(day, subscription.billed_through or day)
    until = state.bill_until(projected, start)
    if until > start:
        lines += state.setup_fee_specs(projected) + state.charge_specs(projected, start, until)
    return lines
