"""The subscription as webhook events carry it: the API's representation, as a plain dict.

Built here rather than with the API's serializer because services must not import the doors
(they sit on top). tests/webhooks/test_emission.py holds it equal to the API's representation.
Discounts and pending changes are read from a prefetch when the caller made one (the billing
run), so a snapshot then costs no query.
"""

from __future__ import annotations

from typing import Any

from billing.webhook_payloads import unit_amount
from customers.webhook_payloads import iso_date, iso_datetime
from subscriptions.models import ScheduledChange, Subscription, SubscriptionDiscount


def _prefetched(subscription: Subscription, name: str) -> list[Any] | None:
    cache = getattr(subscription, "_prefetched_objects_cache", {})
    return list(cache[name]) if name in cache else None


def _discounts(subscription: Subscription) -> list[SubscriptionDiscount]:
    found = _prefetched(subscription, "discounts")
    if found is None:
        found = list(subscription.discounts.select_related("coupon", "promotion_code"))
    return found


def _pending(subscription: Subscription) -> list[ScheduledChange]:
    found = _prefetched(subscription, "scheduled_changes")
    if found is None:
        return list(
            subscription.scheduled_changes.filter(status=ScheduledChange.Status.PENDING)
            .select_related("plan")
            .order_by("effective_on", "id")
        )
    pending = [c for c in found if c.status == ScheduledChange.Status.PENDING]
    return sorted(pending, key=lambda c: (c.effective_on, c.pk))


def subscription_payload(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "customer": subscription.customer_id,
        "plan": subscription.plan.code,
        "phase": subscription.phase.kind,
        "status": subscription.status,
        "quantity": subscription.quantity,
        "currency": subscription.currency,
        "price_list": subscription.price_list.code,
        "unit_amount": unit_amount(subscription.unit_amount, subscription.currency),
        "start_on": iso_date(subscription.start_on),
        "phase_started_on": iso_date(subscription.phase_started_on),
        "phase_ends_on": iso_date(subscription.phase_ends_on),
        "billing_anchor": iso_date(subscription.billing_anchor),
        "billing_day": subscription.billing_day,
        "current_period_start": iso_date(subscription.current_period_start),
        "current_period_end": iso_date(subscription.current_period_end),
        "billed_through": iso_date(subscription.billed_through),
        "usage_billed_through": iso_date(subscription.usage_billed_through),
        "next_transition_on": iso_date(subscription.next_transition_on),
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "cancel_requested_at": iso_datetime(subscription.cancel_requested_at),
        "canceled_at": iso_datetime(subscription.canceled_at),
        "ended_on": iso_date(subscription.ended_on),
        "cancel_reason": subscription.cancel_reason,
        "paused_on": iso_date(subscription.paused_on),
        "pause_resumes_on": iso_date(subscription.pause_resumes_on),
        "parent": subscription.parent_id,
        "group": subscription.group_id,
        "previous": subscription.previous_id,
        "discounts": [
            {
                "coupon": discount.coupon.code,
                "promotion_code": (
                    discount.promotion_code.code if discount.promotion_code_id is not None else None  # type: ignore[union-attr]
                ),
                "starts_on": iso_date(discount.starts_on),
                "ends_on": iso_date(discount.ends_on),
            }
            for discount in _discounts(subscription)
        ],
        "pending_changes": [
            {
                "id": change.pk,
                "kind": change.kind,
                "status": change.status,
                "effective_on": iso_date(change.effective_on),
                "plan": change.plan.code if change.plan_id is not None else None,  # type: ignore[union-attr]
                "quantity": change.quantity,
                "pause_resumes_on": iso_date(change.pause_resumes_on),
                "pause_cycles": change.pause_cycles,
                "created_at": iso_datetime(change.created_at),
            }
            for change in _pending(subscription)
        ],
        "metadata": subscription.metadata,
        "created_at": iso_datetime(subscription.created_at),
        "updated_at": iso_datetime(subscription.updated_at),
    }
