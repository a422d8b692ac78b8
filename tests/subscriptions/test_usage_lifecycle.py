"""Usage and entitlements through the real lifecycle: subscribe, record usage through the API,
play the clock over the period end, read the usage lines of the invoice."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice, InvoiceLine
from catalog.models import Meter, PlanMeter
from core.actors import SYSTEM
from subscriptions.entitlements import customer_has_feature, entitlements_for
from subscriptions.models import Subscription
from subscriptions.services import (
    subscription_cancel,
    subscription_create,
    subscription_pause,
    subscription_resume,
)
from subscriptions.usage import usage_summary
from tests.subscriptions.usage_support import Catalog, MeteredCharge, make_customer, tiers

pytestmark = pytest.mark.django_db

JAN_15 = date(2026, 1, 15)  # the `clock` fixture's day
FEB_15 = date(2026, 2, 15)


class Shop:
    """Plan `api` (20.00 USD a month) charges tokens with graduated tiers: 0-100 at 0.10,
    101-1000 at 0.08, above at 0.05. Plan `api-trial` is the same after a 14-day trial."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.tokens = self.catalog.meter("tokens", Meter.Aggregation.SUM, "tokens", name="Tokens")
        self.hd = self.catalog.feature("hd", "HD streaming")
        graduated = [("USD", tiers(("100", "0.10"), ("1000", "0.08"), (None, "0.05")))]
        charge = MeteredCharge(self.tokens, PlanMeter.Pricing.GRADUATED, graduated)
        self.plan = self.catalog.plan("api", charges=[charge], features=[self.hd], amount="20.00")
        self.trial_plan = self.catalog.plan(
            "api-trial", charges=[charge], features=[self.hd], amount="20.00", trial_days=14
        )
        self.customer = make_customer(external_id="cus-ann")


@pytest.fixture
def shop(clock: Any) -> Shop:
    return Shop()


def _post_usage(api: APIClient, event_id: str, occurred_at: str, tokens: int) -> Any:
    return api.post(
        "/api/v1/usage_events",
        {
            "customer_external_id": "cus-ann",
            "meter": "tokens",
            "event_id": event_id,
            "occurred_at": occurred_at,
            "properties": {"tokens": tokens},
        },
        format="json",
    )


def _advance(api: APIClient, to: str) -> None:
    response = api.post("/api/v1/test_clock/advance", {"to": to}, format="json")
    assert response.status_code == 200, response.json()


def test_usage_of_a_period_is_billed_at_its_end_and_the_period_closes(
    api: APIClient, shop: Shop
) -> None:
    subscription = subscription_create(
        customer=shop.customer, plan=shop.plan, trial=False, actor=SYSTEM
    ).subscription
    assert (subscription.current_period_start, subscription.current_period_end) == (
        JAN_15,
        FEB_15,
    )
    responses = [
        _post_usage(api, "u-1", "2026-01-15T12:00:00Z", 700),
        _post_usage(api, "u-2", "2026-01-15T12:00:00Z", 800),
        _post_usage(api, "u-2", "2026-01-15T12:00:00Z", 800),  # a resend: counted once
    ]
    assert [r.status_code for r in responses] == [201, 201, 200]
    _advance(api, "2026-02-14T23:59:59Z")
    assert _post_usage(api, "u-3", "2026-02-14T23:59:59Z", 1).status_code == 201

    _advance(api, "2026-02-15T06:00:00Z")

    usage_lines = list(
        InvoiceLine.objects.filter(subscription_id=subscription.pk, kind=InvoiceLine.Kind.USAGE)
    )
    assert [
        (line.period_start, line.period_end, line.quantity, line.amount, line.unit_amount)
        for line in usage_lines
    ] == [
        # 1501 tokens: 100 x 0.10 + 900 x 0.08 + 501 x 0.05 = 10 + 72 + 25.05
        (JAN_15, FEB_15, Decimal("1501"), Decimal("107.05"), Decimal("0.0713"))
    ]
    invoice = usage_lines[0].invoice
    assert invoice.status != Invoice.Status.DRAFT
    subscription.refresh_from_db()
    assert subscription.usage_billed_through == FEB_15

    late = _post_usage(api, "u-4", "2026-02-14T23:00:00Z", 5)
    assert late.status_code == 400
    assert late.json()["error"]["code"] == "usage_period_closed"
    assert _post_usage(api, "u-5", "2026-02-15T00:00:00Z", 5).status_code == 201
    summary = usage_summary(subscription=subscription)
    assert (summary.period_start, summary.meters[0].quantity) == (FEB_15, Decimal(5))


def test_the_entitlements_follow_the_lifecycle(api: APIClient, shop: Shop) -> None:
    subscription = subscription_create(
        customer=shop.customer, plan=shop.plan, trial=False, actor=SYSTEM
    ).subscription
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is True

    subscription_pause(subscription=subscription, actor=SYSTEM)
    assert entitlements_for(customer=shop.customer) == []

    subscription_resume(subscription=subscription, actor=SYSTEM)
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is True

    subscription_cancel(subscription=subscription, actor=SYSTEM)  # at the period end
    _advance(api, "2026-02-14T12:00:00Z")
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is True

    _advance(api, "2026-02-15T12:00:00Z")
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is False
    response = api.get(f"/api/v1/customers/{shop.customer.pk}/entitlements")
    assert response.json()["entitlements"] == []


def test_usage_during_a_trial_is_kept_but_not_billed(api: APIClient, shop: Shop) -> None:
    subscription = subscription_create(
        customer=shop.customer, plan=shop.trial_plan, actor=SYSTEM
    ).subscription
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.usage_billed_through == date(2026, 1, 29)  # the first paid day
    assert customer_has_feature(customer=shop.customer, feature_code="hd") is True

    _advance(api, "2026-01-20T10:00:00Z")
    trial_usage = _post_usage(api, "t-1", "2026-01-20T10:00:00Z", 500)
    _advance(api, "2026-01-29T12:00:00Z")
    paid_usage = _post_usage(api, "p-1", "2026-01-29T12:00:00Z", 40)
    late_trial_usage = _post_usage(api, "t-2", "2026-01-28T10:00:00Z", 500)
    _advance(api, "2026-02-28T12:00:00Z")  # past the first paid period [Jan 29, Feb 28)

    assert (trial_usage.status_code, paid_usage.status_code) == (201, 201)
    assert late_trial_usage.json()["error"]["code"] == "usage_period_closed"
    usage_lines = InvoiceLine.objects.filter(
        subscription_id=subscription.pk, kind=InvoiceLine.Kind.USAGE
    )
    assert [(line.period_start, line.quantity, line.amount) for line in usage_lines] == [
        (date(2026, 1, 29), Decimal(40), Decimal("4.00"))
    ]
