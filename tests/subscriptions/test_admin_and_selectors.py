"""The admin reads subscriptions and acts through the services; the selectors scope reads."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.test import Client

from core.errors import NotFoundError, ValidationError
from core.models import AuditLog
from customers.services import partner_create
from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.selectors import (
    plan_for_reference,
    scheduled_changes_upcoming,
    subscription_get,
    subscription_list,
    subscription_timeline,
    subscriptions_due,
)
from subscriptions.services import subscription_change_plan, subscription_create
from tests.subscriptions.conftest import STAFF

pytestmark = pytest.mark.django_db


def test_the_admin_shows_the_timeline_and_cancels_through_the_service(
    admin_client: Client, make_plan: Any, customer: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    page = admin_client.get(f"/admin/subscriptions/subscription/{subscription.pk}/change/")
    canceled = admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "cancel_at_period_end", "_selected_action": [subscription.pk]},
    )

    assert page.status_code == 200
    assert b"Timeline" in page.content
    assert canceled.status_code == 302
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    entry = AuditLog.objects.filter(action="subscription.cancel").get()
    assert entry.actor_type == "user"
    assert SubscriptionEvent.objects.filter(kind="cancel_scheduled").count() == 1

    admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "undo_cancel", "_selected_action": [subscription.pk]},
    )
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False


def test_the_admin_reports_a_refusal_without_changing_anything(
    admin_client: Client, make_plan: Any, customer: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    response = admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "undo_cancel", "_selected_action": [subscription.pk]},
        follow=True,
    )

    assert b"No cancellation is scheduled" in response.content
    assert SubscriptionEvent.objects.filter(kind="cancel_undone").count() == 0


def test_timeline_events_cannot_be_edited_in_the_admin(
    admin_client: Client, make_plan: Any, customer: Any
) -> None:
    subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)
    event = SubscriptionEvent.objects.get()

    assert admin_client.get("/admin/subscriptions/subscriptionevent/add/").status_code == 403
    response = admin_client.post(
        f"/admin/subscriptions/subscriptionevent/{event.pk}/change/", {"kind": "canceled"}
    )
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.kind == "created"


def test_selectors_scope_by_partner_and_filter(make_plan: Any, make_customer: Any) -> None:
    acme = partner_create(code="acme", name="Acme", actor=STAFF)
    plan, other = make_plan("monthly"), make_plan("gold", "50.00")
    ours = subscription_create(
        customer=make_customer(partner=acme), plan=plan, actor=STAFF
    ).subscription
    theirs = subscription_create(customer=make_customer(), plan=other, actor=STAFF).subscription

    assert list(subscription_list(partner=acme)) == [ours]
    assert list(subscription_list(partner=None, plan="gold")) == [theirs]
    assert list(subscription_list(partner=None, plan=str(plan.pk))) == [ours]
    assert list(subscription_list(partner=None, status="canceled")) == []
    assert subscription_get(pk=ours.pk, partner=acme) == ours
    with pytest.raises(NotFoundError):
        subscription_get(pk=theirs.pk, partner=acme)
    with pytest.raises(ValidationError):
        subscription_list(partner=None, status="sleeping")
    assert plan_for_reference(reference="gold") == other
    assert plan_for_reference(reference=plan.pk) == plan
    assert [s.pk for s in subscriptions_due(day=date(2026, 2, 15))] == sorted([ours.pk, theirs.pk])


def test_timeline_and_upcoming_changes(make_plan: Any, customer: Any) -> None:
    gold = make_plan("gold", "50.00", tier_rank=2)
    silver = make_plan("silver", "30.00", tier_rank=1)
    subscription = subscription_create(customer=customer, plan=gold, actor=STAFF).subscription
    subscription_change_plan(subscription=subscription, plan=silver, actor=STAFF)

    assert [e.kind for e in subscription_timeline(subscription=subscription)] == [
        "created",
        "change_scheduled",
    ]
    (change,) = scheduled_changes_upcoming(until=date(2026, 2, 15))
    assert (change.subscription, change.plan, change.effective_on) == (
        subscription,
        silver,
        date(2026, 2, 15),
    )
    assert list(scheduled_changes_upcoming(until=date(2026, 2, 14))) == []
    assert Subscription.objects.get().plan == gold
