"""Entitlements: features of trialing, active and past-due subscriptions and their add-ons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from rest_framework.test import APIClient

from catalog.models import Feature, Plan
from catalog.services import feature_archive
from core.actors import SYSTEM
from customers.models import Customer
from customers.services import partner_create
from subscriptions.entitlements import (
    Entitlement,
    EntitlementSource,
    customer_has_feature,
    entitlements_for,
)
from subscriptions.models import Subscription
from tests.subscriptions.usage_support import (
    FEB_1,
    JAN_1,
    Catalog,
    make_customer,
    make_subscription,
)

pytestmark = pytest.mark.django_db

TODAY = date(2026, 1, 15)  # the `clock` fixture's day


class Shop:
    """Plans `standard` (hd, downloads) and `premium` (hd, 4k); add-on `sports` (live-sports)."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        hd = self.catalog.feature("hd", "HD streaming")
        downloads = self.catalog.feature("downloads", "Offline downloads")
        uhd = self.catalog.feature("4k", "4K streaming")
        sports = self.catalog.feature("live-sports", "Live sports")
        self.features: dict[str, Feature] = {f.code: f for f in (hd, downloads, uhd, sports)}
        self.standard: Plan = self.catalog.plan("standard", features=[hd, downloads])
        self.premium: Plan = self.catalog.plan("premium", features=[hd, uhd])
        self.sports: Plan = self.catalog.plan("sports", features=[sports], addon=True)
        self.customer: Customer = make_customer()


@pytest.fixture
def shop(clock: Any) -> Shop:
    return Shop()


def _codes(customer: Customer, on: date | None = None) -> list[str]:
    return [e.feature_code for e in entitlements_for(customer=customer, on=on)]


@pytest.mark.parametrize(
    "status",
    [Subscription.Status.TRIALING, Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE],
)
def test_a_live_subscription_grants_its_plans_features(shop: Shop, status: str) -> None:
    subscription = make_subscription(shop.customer, shop.standard, status=status)

    entitlements = entitlements_for(customer=shop.customer)

    source = (EntitlementSource(subscription_id=subscription.pk, plan_code="standard"),)
    assert entitlements == [
        Entitlement(feature_code="downloads", feature_name="Offline downloads", sources=source),
        Entitlement(feature_code="hd", feature_name="HD streaming", sources=source),
    ]
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is True
    assert customer_has_feature(customer=shop.customer, feature_code="4k") is False


@pytest.mark.parametrize(
    "state",
    [
        {"status": Subscription.Status.PAUSED, "paused_on": date(2026, 1, 10)},
        {"status": Subscription.Status.FUTURE, "start_on": date(2026, 2, 1), "period": None},
        {"status": Subscription.Status.CANCELED, "ended_on": date(2026, 1, 10)},
    ],
    ids=["paused", "future", "canceled"],
)
def test_a_paused_future_or_ended_subscription_grants_nothing(
    shop: Shop, state: dict[str, Any]
) -> None:
    make_subscription(shop.customer, shop.premium, **state)

    assert entitlements_for(customer=shop.customer) == []
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is False


def test_a_customer_without_subscriptions_has_no_entitlements(shop: Shop) -> None:
    assert entitlements_for(customer=shop.customer) == []


def test_a_cancel_at_period_end_keeps_the_features_until_the_period_ends(shop: Shop) -> None:
    make_subscription(shop.customer, shop.premium, cancel_at_period_end=True, period=(JAN_1, FEB_1))

    assert _codes(shop.customer) == ["4k", "hd"]
    assert _codes(shop.customer, on=date(2026, 1, 31)) == ["4k", "hd"]
    # The period is over: access ends even before the daily work marks it canceled.
    assert _codes(shop.customer, on=FEB_1) == []


def test_an_ending_subscription_keeps_its_features_until_its_last_day(shop: Shop) -> None:
    make_subscription(shop.customer, shop.premium, ended_on=date(2026, 1, 20))

    assert _codes(shop.customer, on=date(2026, 1, 19)) == ["4k", "hd"]
    assert _codes(shop.customer, on=date(2026, 1, 20)) == []


def test_a_subscription_grants_from_its_start_day(shop: Shop) -> None:
    make_subscription(shop.customer, shop.premium, start_on=TODAY)

    assert _codes(shop.customer, on=date(2026, 1, 14)) == []
    assert _codes(shop.customer) == ["4k", "hd"]


def test_an_add_on_grants_its_plans_features_with_its_base(shop: Shop) -> None:
    base = make_subscription(shop.customer, shop.standard)
    addon = make_subscription(shop.customer, shop.sports, parent=base)

    entitlements = {e.feature_code: e for e in entitlements_for(customer=shop.customer)}

    assert sorted(entitlements) == ["downloads", "hd", "live-sports"]
    assert entitlements["live-sports"].sources == (
        EntitlementSource(subscription_id=addon.pk, plan_code="sports"),
    )
    assert customer_has_feature(customer=shop.customer, feature_code="live-sports") is True


@pytest.mark.parametrize(
    "base_state",
    [
        {"status": Subscription.Status.PAUSED, "paused_on": date(2026, 1, 10)},
        {"status": Subscription.Status.CANCELED, "ended_on": date(2026, 1, 10)},
    ],
    ids=["paused-base", "canceled-base"],
)
def test_an_add_on_of_a_paused_or_ended_base_grants_nothing(
    shop: Shop, base_state: dict[str, Any]
) -> None:
    base = make_subscription(shop.customer, shop.standard, **base_state)
    make_subscription(shop.customer, shop.sports, parent=base)

    assert entitlements_for(customer=shop.customer) == []
    assert customer_has_feature(customer=shop.customer, feature_code="live-sports") is False


def test_a_paused_add_on_grants_nothing_while_its_base_still_does(shop: Shop) -> None:
    base = make_subscription(shop.customer, shop.standard)
    make_subscription(
        shop.customer,
        shop.sports,
        parent=base,
        status=Subscription.Status.PAUSED,
        paused_on=date(2026, 1, 10),
    )

    assert _codes(shop.customer) == ["downloads", "hd"]


def test_a_feature_from_two_subscriptions_lists_both_sources(shop: Shop) -> None:
    standard = make_subscription(shop.customer, shop.standard)
    premium = make_subscription(shop.customer, shop.premium)

    entitlements = {e.feature_code: e for e in entitlements_for(customer=shop.customer)}

    assert sorted(entitlements) == ["4k", "downloads", "hd"]
    assert entitlements["hd"].sources == (
        EntitlementSource(subscription_id=standard.pk, plan_code="standard"),
        EntitlementSource(subscription_id=premium.pk, plan_code="premium"),
    )


def test_other_customers_subscriptions_grant_nothing(shop: Shop) -> None:
    make_subscription(make_customer(), shop.premium)

    assert entitlements_for(customer=shop.customer) == []


def test_an_archived_feature_stays_granted_to_its_plans_subscribers(shop: Shop) -> None:
    make_subscription(shop.customer, shop.premium)
    feature_archive(feature=shop.features["4k"], actor=SYSTEM)

    assert _codes(shop.customer) == ["4k", "hd"]


# --- API ----------------------------------------------------------------------------------------


def test_the_api_lists_a_customers_entitlements(api: APIClient, shop: Shop) -> None:
    base = make_subscription(shop.customer, shop.standard)
    addon = make_subscription(shop.customer, shop.sports, parent=base)
    make_subscription(
        shop.customer, shop.premium, status=Subscription.Status.PAUSED, paused_on=JAN_1
    )

    response = api.get(f"/api/v1/customers/{shop.customer.pk}/entitlements")

    assert response.status_code == 200, response.json()
    assert response.json() == {
        "customer": shop.customer.pk,
        "on": "2026-01-15",
        "entitlements": [
            {
                "feature": "downloads",
                "name": "Offline downloads",
                "sources": [{"subscription": base.pk, "plan": "standard"}],
            },
            {
                "feature": "hd",
                "name": "HD streaming",
                "sources": [{"subscription": base.pk, "plan": "standard"}],
            },
            {
                "feature": "live-sports",
                "name": "Live sports",
                "sources": [{"subscription": addon.pk, "plan": "sports"}],
            },
        ],
    }


def test_the_api_answers_404_for_an_unknown_customer(api: APIClient, shop: Shop) -> None:
    response = api.get("/api/v1/customers/999999/entitlements")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"


def test_a_partner_reads_only_its_customers_entitlements(
    api_client_for: Callable[..., APIClient], shop: Shop
) -> None:
    partner = partner_create(code="acme", name="Acme", actor=SYSTEM)
    own = make_customer(partner=partner)
    make_subscription(own, shop.premium)
    make_subscription(shop.customer, shop.premium)
    client = api_client_for(scopes=["read"], partner=partner)

    mine = client.get(f"/api/v1/customers/{own.pk}/entitlements")
    theirs = client.get(f"/api/v1/customers/{shop.customer.pk}/entitlements")

    assert mine.status_code == 200
    assert [e["feature"] for e in mine.json()["entitlements"]] == ["4k", "hd"]
    assert theirs.status_code == 404
