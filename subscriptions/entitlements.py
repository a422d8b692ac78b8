"""Entitlements: the features a customer has right now, from their plans and add-ons.

A partner app gates access with these. One rule decides which subscriptions grant features
(`entitling_subscriptions`); everything else reads through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Exists, OuterRef, Q, QuerySet

from catalog.models import Plan
from core import clock
from customers.models import Customer
from subscriptions.models import DunningCase, Subscription

# Trialing, active and past due subscriptions grant their plan's features (unless dunning has
# blocked them); paused, future and canceled ones grant nothing. (A subscription set to cancel
# at period end stays active, and keeps its features, until the period ends.)
ENTITLING_STATUSES = (
    Subscription.Status.TRIALING,
    Subscription.Status.ACTIVE,
    Subscription.Status.PAST_DUE,
)


@dataclass(frozen=True)
class EntitlementSource:
    subscription_id: int
    plan_code: str


@dataclass(frozen=True)
class Entitlement:
    feature_code: str
    feature_name: str
    sources: tuple[EntitlementSource, ...]


def _grants_on(day: date, prefix: str = "") -> Q:
    """Q for a subscription (or, with `parent__`, its base) that grants its features on `day`.

    Status decides, and the dates guard the hours before the daily work catches up: it has
    started, it has not ended (an end on D ends access at the start of D), and a cancel at
    period end is over once the period is.
    """
    # Dunning: an open case at the blocked stage switches access off until it is paid.
    blocked = DunningCase.subscriptions.through.objects.filter(
        subscription_id=OuterRef(f"{prefix}pk"),
        dunningcase__status=DunningCase.Status.OPEN,
        dunningcase__stage=DunningCase.Stage.BLOCKED,
    )
    return (
        ~Exists(blocked)
        & Q(
            **{
                f"{prefix}status__in": ENTITLING_STATUSES,
                f"{prefix}start_on__lte": day,
            }
        )
        & (Q(**{f"{prefix}ended_on__isnull": True}) | Q(**{f"{prefix}ended_on__gt": day}))
        & ~Q(
            **{
                f"{prefix}cancel_at_period_end": True,
                f"{prefix}current_period_end__isnull": False,
                f"{prefix}current_period_end__lte": day,
            }
        )
    )


def entitling_subscriptions(
    *, customer: Customer, on: date | None = None
) -> QuerySet[Subscription]:
    """The customer's subscriptions that grant their plan's features on `on` (today).

    The single place of the rule. An add-on grants its plan's features only while its base
    subscription grants its own (a paused or ended base takes its add-ons' features with it).
    """
    day = on or clock.today()
    return Subscription.objects.filter(customer=customer).filter(
        _grants_on(day) & (Q(parent__isnull=True) | _grants_on(day, "parent__"))
    )


def entitlements_for(*, customer: Customer, on: date | None = None) -> list[Entitlement]:
    """Every feature the customer has, by feature code, each with the subscriptions granting it.

    A feature archived in the catalog stays granted to the plans that list it: subscribers keep
    what they bought.
    """
    subscriptions = list(
        entitling_subscriptions(customer=customer, on=on).select_related("plan").order_by("id")
    )
    by_plan: dict[int, list[Subscription]] = {}
    for subscription in subscriptions:
        by_plan.setdefault(subscription.plan_id, []).append(subscription)
    links = (
        Plan.features.through.objects.filter(plan_id__in=list(by_plan))
        .select_related("feature")
        .order_by("feature__code")
    )
    names: dict[str, str] = {}
    sources: dict[str, list[EntitlementSource]] = {}
    for link in links:
        feature = link.feature
        names[feature.code] = feature.name
        sources.setdefault(feature.code, []).extend(
            EntitlementSource(subscription_id=s.pk, plan_code=s.plan.code)
            for s in by_plan[link.plan_id]
        )
    return [
        Entitlement(
            feature_code=code,
            feature_name=names[code],
            sources=tuple(sorted(sources[code], key=lambda source: source.subscription_id)),
        )
        for code in sorted(names)
    ]


def customer_has_feature(*, customer: Customer, feature_code: str, on: date | None = None) -> bool:
    """Whether the customer has the feature `feature_code` now (or on `on`)."""
    return (
        entitling_subscriptions(customer=customer, on=on)
        .filter(plan__features__code=feature_code)
        .exists()
    )
