"""Reads of subscriptions for the doors and the apps above. Nothing here writes.

Partner scoping comes from customers.selectors: a partner key sees only the subscriptions of
its own customers, and another partner's subscription is "not found", never "forbidden".
"""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from catalog.models import Plan
from core.errors import NotFoundError, ValidationError
from customers.models import Customer, Partner
from customers.selectors import customers_visible_to
from subscriptions.models import DunningCase, ScheduledChange, Subscription, SubscriptionEvent


def subscriptions_visible_to(*, partner: Partner | None) -> QuerySet[Subscription]:
    return Subscription.objects.select_related(
        "customer", "plan", "phase", "price_list", "parent", "group", "previous"
    ).filter(customer__in=customers_visible_to(partner=partner))


def subscription_get(*, pk: int | str, partner: Partner | None) -> Subscription:
    """One subscription, or `subscription_not_found` (also for another partner's)."""
    try:
        return subscriptions_visible_to(partner=partner).get(pk=int(pk))
    except (Subscription.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such subscription: {pk}.", code="subscription_not_found", param="id"
        ) from None


def subscription_list(
    *,
    partner: Partner | None,
    customer: Customer | int | None = None,
    status: str | None = None,
    plan: Plan | str | int | None = None,
) -> QuerySet[Subscription]:
    """Subscriptions visible to `partner`, narrowed by customer, status and plan (id or code)."""
    subscriptions = subscriptions_visible_to(partner=partner)
    if customer is not None:
        subscriptions = subscriptions.filter(
            customer_id=customer.pk if isinstance(customer, Customer) else customer
        )
    if status is not None:
        if status not in Subscription.Status.values:
            raise ValidationError(
                f"status is one of {', '.join(Subscription.Status.values)}.",
                code="invalid_status",
                param="status",
            )
        subscriptions = subscriptions.filter(status=status)
    if plan is not None:
        if isinstance(plan, Plan):
            subscriptions = subscriptions.filter(plan=plan)
        elif isinstance(plan, int) or str(plan).isdigit():
            subscriptions = subscriptions.filter(plan_id=int(plan))
        else:
            subscriptions = subscriptions.filter(plan__code=plan)
    return subscriptions


def subscription_timeline(*, subscription: Subscription) -> QuerySet[SubscriptionEvent]:
    """The subscription's history, oldest first (the order it happened in)."""
    return SubscriptionEvent.objects.filter(subscription=subscription).order_by("id")


def subscription_scheduled_changes(
    *, subscription: Subscription, pending_only: bool = True
) -> QuerySet[ScheduledChange]:
    changes = ScheduledChange.objects.filter(subscription=subscription).select_related("plan")
    if pending_only:
        changes = changes.filter(status=ScheduledChange.Status.PENDING)
    return changes.order_by("effective_on", "id")


def scheduled_changes_upcoming(
    *, until: date | None = None, partner: Partner | None = None
) -> QuerySet[ScheduledChange]:
    """Pending changes of every (visible) subscription, soonest first, up to `until`."""
    changes = ScheduledChange.objects.filter(
        status=ScheduledChange.Status.PENDING,
        subscription__in=subscriptions_visible_to(partner=partner),
    ).select_related("subscription", "plan")
    if until is not None:
        changes = changes.filter(effective_on__lte=until)
    return changes.order_by("effective_on", "id")


def subscriptions_due(*, day: date) -> QuerySet[Subscription]:
    """Subscriptions with work due by `day` (what the daily work will pick up)."""
    return Subscription.objects.filter(next_transition_on__lte=day).exclude(
        status=Subscription.Status.CANCELED
    )


def plan_for_reference(*, reference: str | int) -> Plan:
    """A plan named by its code or its id, as API callers do (`plan_not_found` otherwise)."""
    text = str(reference).strip()
    plans = Plan.objects.select_related("product")
    found = plans.filter(pk=int(text)).first() if text.isdigit() else None
    found = found or plans.filter(code=text).first()
    if found is None:
        raise ValidationError(f"No such plan: {reference!r}.", code="plan_not_found", param="plan")
    return found


def dunning_cases_visible_to(*, partner: Partner | None) -> QuerySet[DunningCase]:
    return (
        DunningCase.objects.select_related("invoice", "customer")
        .prefetch_related("subscriptions")
        .filter(customer__in=customers_visible_to(partner=partner))
    )


def dunning_case_get(*, pk: int | str, partner: Partner | None) -> DunningCase:
    """One dunning case, or `dunning_case_not_found` (also for another partner's)."""
    try:
        return dunning_cases_visible_to(partner=partner).get(pk=int(pk))
    except (DunningCase.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such dunning case: {pk}.", code="dunning_case_not_found", param="id"
        ) from None


def dunning_case_list(
    *,
    partner: Partner | None,
    customer_id: int | None = None,
    status: str | None = None,
    stage: str | None = None,
) -> QuerySet[DunningCase]:
    """Dunning cases visible to `partner`, narrowed by customer, status (open, closed), stage."""
    cases = dunning_cases_visible_to(partner=partner)
    if customer_id is not None:
        cases = cases.filter(customer_id=customer_id)
    if status is not None:
        cases = cases.filter(status=status)
    if stage is not None:
        cases = cases.filter(stage=stage)
    return cases
