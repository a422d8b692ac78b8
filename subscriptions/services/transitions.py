"""The steps a subscription takes in time, shared by the daily work and the services.

Each function works on a subscription row the caller has locked and changes it in memory (the
caller saves it); each returns the invoice lines it produced so the caller can put the lines of
one moment on one invoice. Nothing here opens a transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from billing.models import Invoice
from billing.services import LineSpec
from catalog.models import PlanPhase
from core import clock
from core.actors import Actor
from core.periods import add_interval
from core.services import audit_snapshot
from core.webhooks.events import EventType
from subscriptions.models import ScheduledChange, Subscription, SubscriptionEvent
from subscriptions.services import state, webhooks

Kind = SubscriptionEvent.Kind
Status = Subscription.Status


@dataclass
class Outcome:
    """What moving a subscription forward produced."""

    lines: list[LineSpec] = field(default_factory=list)
    reasons: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, lines: list[LineSpec], reason: str) -> None:
        if lines:
            self.lines.extend(lines)
            self.reasons.add(reason)


# Several moments on one invoice: the reason shown is the most significant one.
_REASON_ORDER = [
    Invoice.BillingReason.SUBSCRIPTION_CREATE,
    Invoice.BillingReason.SUBSCRIPTION_CYCLE,
    Invoice.BillingReason.SUBSCRIPTION_UPDATE,
    Invoice.BillingReason.SUBSCRIPTION_CANCEL,
    Invoice.BillingReason.USAGE,
]


def main_reason(reasons: set[str]) -> str:
    return next(
        (r for r in _REASON_ORDER if r in reasons), Invoice.BillingReason.SUBSCRIPTION_CYCLE
    )


def end_subscription(
    subscription: Subscription, on: date, *, actor: Actor, reason: str, data: dict | None = None
) -> None:
    """End on `on` (the start of that day): canceled, nothing pending any more."""
    subscription.status = Status.CANCELED
    subscription.ended_on = on
    subscription.canceled_at = clock.now()
    subscription.cancel_reason = reason[:200]
    subscription.cancel_at_period_end = False
    subscription.paused_on = None
    subscription.pause_resumes_on = None
    for change in state.pending_changes(subscription):
        change.status = ScheduledChange.Status.CANCELED
        change.resolved_at = clock.now()
        change.save(update_fields=["status", "resolved_at"])
    state.record_event(
        subscription,
        Kind.CANCELED,
        actor=actor,
        effective_on=on,
        data={"reason": reason, **(data or {})},
    )


def _resolve(change: ScheduledChange) -> None:
    change.status = ScheduledChange.Status.APPLIED
    change.resolved_at = clock.now()
    change.save(update_fields=["status", "resolved_at"])


def final_phase(plan_phases: list[PlanPhase]) -> PlanPhase:
    return plan_phases[-1]


def apply_plan_change(
    subscription: Subscription, change: ScheduledChange, on: date, *, actor: Actor
) -> None:
    """A scheduled plan change at a period end: the new plan's final phase from `on`."""
    assert change.plan is not None  # noqa: S101 - guaranteed by the state rules
    before = {"plan": subscription.plan.code, "quantity": subscription.quantity}
    phase = final_phase(list(change.plan.phases.order_by("sequence")))
    subscription.plan = change.plan
    subscription.phase = phase
    subscription.phase_started_on = on
    subscription.phase_ends_on = add_interval(on, phase.duration) if phase.duration else None
    subscription.pricing_date = on
    if change.quantity is not None:
        subscription.quantity = change.quantity
    if subscription.status == Status.TRIALING:
        subscription.status = Status.ACTIVE
    _resolve(change)
    state.record_event(
        subscription,
        Kind.PLAN_CHANGED,
        actor=actor,
        effective_on=on,
        data={
            "before": before,
            "after": {"plan": change.plan.code, "quantity": subscription.quantity},
            "policy": "end_of_term",
        },
    )


def apply_quantity_change(
    subscription: Subscription, change: ScheduledChange, on: date, *, actor: Actor
) -> None:
    assert change.quantity is not None  # noqa: S101 - guaranteed by the state rules
    before = subscription.quantity
    subscription.quantity = change.quantity
    _resolve(change)
    state.record_event(
        subscription,
        Kind.QUANTITY_CHANGED,
        actor=actor,
        effective_on=on,
        data={"before": before, "after": change.quantity, "policy": "end_of_term"},
    )


def apply_pause(
    subscription: Subscription, change: ScheduledChange, on: date, *, actor: Actor
) -> None:
    resumes_on = change.pause_resumes_on
    if resumes_on is None and change.pause_cycles:
        resumes_on = add_interval(on, subscription.plan.interval, change.pause_cycles)
    pause_now(subscription, on, resumes_on)
    _resolve(change)
    state.record_event(
        subscription,
        Kind.PAUSED,
        actor=actor,
        effective_on=on,
        data={"paused_on": on, "resumes_on": resumes_on, "when": "period_end"},
    )


def pause_now(subscription: Subscription, on: date, resumes_on: date | None) -> list[LineSpec]:
    """Stop billing from `on`: the unused days [on, billed_through) go back, usage closes."""
    lines: list[LineSpec] = []
    billed = subscription.billed_through
    if billed is not None and billed > on:
        lines += state.credit_specs(subscription, on, billed)
        subscription.billed_through = on
    lines += state.close_usage(subscription, on)
    subscription.status = Status.PAUSED
    subscription.paused_on = on
    subscription.pause_resumes_on = resumes_on
    return lines


def resume(subscription: Subscription, on: date, *, actor: Actor) -> list[LineSpec]:
    """Bill from `on` to the next anchor date (the anchor is kept) and run again."""
    paused_on = subscription.paused_on
    apply_due_changes(subscription, on, actor=actor, include_pause=False)
    advance_phases(subscription, on, actor=actor)
    if subscription.status == Status.CANCELED:
        return []
    subscription.status = Status.ACTIVE
    subscription.paused_on = None
    subscription.pause_resumes_on = None
    subscription.usage_billed_through = on
    subscription.billed_through = on
    lines = bill_period(subscription, on)
    state.record_event(
        subscription,
        Kind.RESUMED,
        actor=actor,
        effective_on=on,
        data={"paused_on": paused_on, "resumed_on": on},
    )
    return lines


def bill_period(subscription: Subscription, start: date) -> list[LineSpec]:
    """Bill [start, end of the period containing it) in advance and move the mark to its end."""
    until = state.bill_until(subscription, start)
    if until <= start:
        return []
    lines = state.setup_fee_specs(subscription) + state.charge_specs(subscription, start, until)
    subscription.setup_fee_billed = True
    subscription.billed_through = until
    subscription.current_period_start = start
    subscription.current_period_end = until
    return lines


def apply_due_changes(
    subscription: Subscription, on: date, *, actor: Actor, include_pause: bool = True
) -> bool:
    """Apply the scheduled changes due by `on`; True when a pause took effect."""
    for change in state.pending_changes(subscription):
        if change.effective_on > on:
            continue
        if change.kind == ScheduledChange.Kind.CHANGE_PLAN:
            apply_plan_change(subscription, change, change.effective_on, actor=actor)
        elif change.kind == ScheduledChange.Kind.CHANGE_QUANTITY:
            apply_quantity_change(subscription, change, change.effective_on, actor=actor)
        elif include_pause and subscription.status in state.RUNNING:
            apply_pause(subscription, change, change.effective_on, actor=actor)
            return True
    return False


def advance_phases(subscription: Subscription, on: date, *, actor: Actor) -> None:
    """Move through every phase that ended by `on` (each at its own end date)."""
    while (
        subscription.status != Status.CANCELED
        and subscription.phase_ends_on is not None
        and subscription.phase_ends_on <= on
    ):
        ended = subscription.phase_ends_on
        current = subscription.phase
        if current.kind == PlanPhase.Kind.FIXED_TERM:
            if current.renews:
                subscription.phase_started_on = ended
                subscription.phase_ends_on = add_interval(ended, current.duration)  # type: ignore[arg-type]
                state.record_event(
                    subscription,
                    Kind.RENEWED,
                    actor=actor,
                    effective_on=ended,
                    data={"term_ends_on": subscription.phase_ends_on},
                )
                continue
            end_subscription(subscription, ended, actor=actor, reason="term_ended")
            return
        following = state.following_phases(subscription)
        if not following:
            subscription.phase_ends_on = None
            return
        nxt = following[0]
        subscription.phase = nxt
        subscription.phase_started_on = ended
        subscription.phase_ends_on = add_interval(ended, nxt.duration) if nxt.duration else None
        if subscription.status == Status.TRIALING:
            subscription.status = Status.ACTIVE
        state.record_event(
            subscription,
            Kind.PHASE_STARTED,
            actor=actor,
            effective_on=ended,
            data={
                "phase": nxt.kind,
                "sequence": nxt.sequence,
                "ends_on": subscription.phase_ends_on,
            },
        )


def step(subscription: Subscription, day: date, *, actor: Actor, outcome: Outcome) -> None:
    """Do what is due on the subscription's next transition day (which is <= `day`)."""
    due = subscription.next_transition_on
    assert due is not None  # noqa: S101 - guaranteed by the state rules
    if subscription.status == Status.FUTURE:
        subscription.status = (
            Status.TRIALING if subscription.phase.kind == PlanPhase.Kind.TRIAL else Status.ACTIVE
        )
        state.record_event(subscription, Kind.STARTED, actor=actor, effective_on=due)
        outcome.counts["started"] += 1
    if subscription.status == Status.PAUSED:
        apply_due_changes(subscription, due, actor=actor, include_pause=False)
        advance_phases(subscription, due, actor=actor)
        resumes_on = subscription.pause_resumes_on
        if subscription.status == Status.PAUSED and resumes_on is not None and resumes_on <= due:
            outcome.add(resume(subscription, resumes_on, actor=actor), _cycle())
            outcome.counts["resumed"] += 1
        if subscription.status == Status.CANCELED:
            outcome.counts["terms_ended"] += 1
        return

    billed = subscription.billed_through
    assert billed is not None  # noqa: S101 - guaranteed by the state rules
    at_period_end = billed <= due
    if at_period_end:
        usage = state.close_usage(subscription, billed)
        if usage:
            outcome.add(usage, Invoice.BillingReason.SUBSCRIPTION_CYCLE)
            outcome.counts["usage_closed"] += 1
        if subscription.cancel_at_period_end:
            end_subscription(
                subscription,
                billed,
                actor=actor,
                reason=subscription.cancel_reason or "canceled_at_period_end",
            )
            outcome.counts["canceled"] += 1
            return
        changes_before = len(state.pending_changes(subscription))
        paused = apply_due_changes(subscription, billed, actor=actor)
        outcome.counts["changes_applied"] += changes_before - len(
            state.pending_changes(subscription)
        )
        if paused:
            outcome.counts["paused"] += 1
            return

    phase_before = (subscription.phase_id, subscription.phase_started_on)
    advance_phases(subscription, due, actor=actor)
    if subscription.status == Status.CANCELED:
        outcome.counts["terms_ended"] += 1
        return
    if (subscription.phase_id, subscription.phase_started_on) != phase_before:
        outcome.counts["phases_started"] += 1

    if at_period_end and subscription.status in (*state.RUNNING,):
        first = not subscription.setup_fee_billed
        _discount_ended(subscription, billed, actor=actor)
        lines = bill_period(subscription, billed)
        reason = Invoice.BillingReason.SUBSCRIPTION_CREATE if first else _cycle()
        outcome.add(lines, reason)
        if lines:
            outcome.counts["renewed"] += 1
            webhooks.note(subscription, EventType.SUBSCRIPTION_RENEWED)


def _cycle() -> str:
    return Invoice.BillingReason.SUBSCRIPTION_CYCLE


def _discount_ended(subscription: Subscription, period_start: date, *, actor: Actor) -> None:
    for discount in subscription.discounts.filter(ends_on=period_start):
        state.record_event(
            subscription,
            Kind.DISCOUNT_ENDED,
            actor=actor,
            effective_on=period_start,
            data={"coupon": discount.coupon.code},
        )


def advance(subscription: Subscription, day: date, *, actor: Actor, outcome: Outcome) -> None:
    """Do, in date order, everything due on the subscription up to `day`; save each step."""
    for _ in range(10_000):
        due = subscription.next_transition_on
        if due is None or due > day or subscription.status == Status.CANCELED:
            return
        before = audit_snapshot(subscription)
        step(subscription, day, actor=actor, outcome=outcome)
        state.save(subscription, actor=actor, action="subscription.advance", before=before)
        if subscription.next_transition_on is not None and subscription.next_transition_on <= due:
            # No progress would loop for ever: a state this code does not expect.
            raise RuntimeError(
                f"subscription {subscription.pk} did not move past {due} "
                f"(next {subscription.next_transition_on})"
            )
    raise RuntimeError(f"subscription {subscription.pk} has too many transitions to process")
