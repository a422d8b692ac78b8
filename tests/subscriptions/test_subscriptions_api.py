"""The subscriptions API: every lifecycle action through HTTP, partner isolation, previews
that write nothing, and a year played through the test clock."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice
from customers.services import partner_create
from subscriptions.models import Subscription, SubscriptionEvent
from tests.subscriptions.conftest import STAFF, trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def plans(make_plan: Any) -> dict[str, Any]:
    return {
        "silver": make_plan("silver", "30.00", tier_rank=1),
        "gold": make_plan("gold", "60.00", tier_rank=2),
        "trial": make_plan("trial-monthly", phases=[trial(10), *_evergreen()]),
    }


def _evergreen() -> list[Any]:
    from tests.subscriptions.conftest import evergreen

    return [evergreen("30.00")]


def _create(api: APIClient, customer: Any, **body: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/subscriptions", {"customer": customer.pk, "plan": "silver", **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    return dict(response.json())


def test_create_returns_the_subscription_and_its_first_invoice(
    api: APIClient, customer: Any, plans: Any
) -> None:
    body = _create(api, customer, quantity=2)

    subscription = body["subscription"]
    assert subscription["status"] == "active"
    assert subscription["plan"] == "silver"
    assert subscription["quantity"] == 2
    assert subscription["billing_anchor"] == "2026-01-15"
    assert subscription["billed_through"] == "2026-02-15"
    assert body["invoice"]["total"] == "60.00"
    assert body["invoice"]["lines"][0]["period_start"] == "2026-01-15"
    assert body["invoice"]["lines"][0]["amount"] == "60.00"


def test_create_by_plan_id_with_a_trial(api: APIClient, customer: Any, plans: Any) -> None:
    body = _create(api, customer, plan=plans["trial"].pk)

    assert body["subscription"]["status"] == "trialing"
    assert body["subscription"]["phase"] == "trial"
    assert body["invoice"] is None


def test_create_refusals_use_the_error_shape(api: APIClient, customer: Any, plans: Any) -> None:
    unknown_plan = api.post(
        "/api/v1/subscriptions", {"customer": customer.pk, "plan": "nope"}, format="json"
    )
    bad_quantity = api.post(
        "/api/v1/subscriptions",
        {"customer": customer.pk, "plan": "silver", "quantity": 0},
        format="json",
    )
    bad_list = api.post(
        "/api/v1/subscriptions",
        {"customer": customer.pk, "plan": "silver", "price_list": "nowhere"},
        format="json",
    )

    assert unknown_plan.status_code == 400
    assert unknown_plan.json()["error"]["code"] == "plan_not_found"
    assert bad_quantity.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_quantity",
        "message": "silver is sold in quantities of at least 1.",
        "param": "quantity",
    }
    assert bad_list.json()["error"]["code"] == "price_list_not_found"
    assert Subscription.objects.count() == 0


def test_list_filters_and_the_customers_subscriptions(
    api: APIClient, make_customer: Any, plans: Any
) -> None:
    alice, bob = make_customer(), make_customer()
    _create(api, alice)
    _create(api, alice, plan="gold")
    _create(api, bob)

    by_customer = api.get(f"/api/v1/subscriptions?customer={alice.pk}").json()["results"]
    by_plan = api.get("/api/v1/subscriptions?plan=gold").json()["results"]
    nested = api.get(f"/api/v1/customers/{bob.pk}/subscriptions").json()["results"]
    bad_status = api.get("/api/v1/subscriptions?status=sleeping")

    assert [s["plan"] for s in by_customer] == ["gold", "silver"]
    assert [s["customer"] for s in by_plan] == [alice.pk]
    assert [s["customer"] for s in nested] == [bob.pk]
    assert bad_status.status_code == 400


def test_a_preview_shows_the_invoice_and_writes_nothing(
    api: APIClient, customer: Any, plans: Any, set_today: Any
) -> None:
    subscription_id = _create(api, customer)["subscription"]["id"]
    set_today(__import__("datetime").date(2026, 1, 25))
    invoices = Invoice.objects.count()
    events = SubscriptionEvent.objects.count()

    response = api.post(
        f"/api/v1/subscriptions/{subscription_id}/change_plan",
        {"plan": "gold", "preview": True},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["preview"] is True
    assert body["policy"] == "immediate"
    assert [(line["kind"], line["amount"]) for line in body["invoice"]["lines"]] == [
        ("proration_credit", "-20.32"),  # 30 x 21 / 31
        ("proration_charge", "40.65"),  # 60 x 21 / 31
    ]
    assert body["invoice"]["total"] == "20.33"
    assert body["invoice"]["amount_due"] == "20.33"
    assert Invoice.objects.count() == invoices
    assert SubscriptionEvent.objects.count() == events
    assert Subscription.objects.get(pk=subscription_id).plan.code == "silver"

    applied = api.post(
        f"/api/v1/subscriptions/{subscription_id}/change_plan", {"plan": "gold"}, format="json"
    ).json()
    assert applied["subscription"]["plan"] == "gold"
    assert applied["invoice"]["total"] == body["invoice"]["total"]


def test_a_downgrade_preview_says_when_and_that_nothing_is_invoiced_now(
    api: APIClient, customer: Any, plans: Any
) -> None:
    subscription_id = _create(api, customer, plan="gold")["subscription"]["id"]

    body = api.post(
        f"/api/v1/subscriptions/{subscription_id}/change_plan",
        {"plan": "silver", "preview": True},
        format="json",
    ).json()

    assert body == {
        "preview": True,
        "policy": "end_of_term",
        "effective_on": "2026-02-15",
        "invoice": None,
    }


def test_the_whole_lifecycle_through_the_api(
    api: APIClient, customer: Any, plans: Any, set_today: Any
) -> None:
    from datetime import date

    subscription_id = _create(api, customer, quantity=1)["subscription"]["id"]
    base = f"/api/v1/subscriptions/{subscription_id}"

    more = api.post(f"{base}/change_quantity", {"quantity": 3}, format="json")
    cancel = api.post(f"{base}/cancel", {"reason": "too expensive"}, format="json")
    undo = api.post(f"{base}/undo_cancel", {}, format="json")
    set_today(date(2026, 1, 20))
    pause = api.post(f"{base}/pause", {"cycles": 1}, format="json")
    resume = api.post(f"{base}/resume", {}, format="json")
    down = api.post(f"{base}/change_quantity", {"quantity": 1}, format="json")
    undo_change = api.post(f"{base}/undo_change", {"kind": "change_quantity"}, format="json")
    end = api.post(f"{base}/cancel", {"policy": "immediate"}, format="json")
    again = api.post(f"{base}/cancel", {"policy": "immediate"}, format="json")
    back = api.post(f"{base}/reactivate", {}, format="json")
    timeline = api.get(f"{base}/timeline")

    assert more.status_code == 200, more.json()
    assert more.json()["invoice"]["billing_reason"] == "subscription_update"
    assert cancel.json()["subscription"]["cancel_at_period_end"] is True
    assert undo.json()["subscription"]["cancel_at_period_end"] is False
    assert pause.json()["subscription"]["status"] == "paused"
    assert pause.json()["subscription"]["pause_resumes_on"] == "2026-02-20"
    assert resume.json()["subscription"]["status"] == "active"
    assert down.json()["subscription"]["pending_changes"][0]["kind"] == "change_quantity"
    assert undo_change.json()["subscription"]["pending_changes"] == []
    assert end.json()["subscription"]["status"] == "canceled"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "subscription_ended"
    assert back.status_code == 201
    assert back.json()["subscription"]["previous"] == subscription_id
    assert [e["kind"] for e in timeline.json()["results"]] == [
        "created",
        "quantity_changed",
        "cancel_scheduled",
        "cancel_undone",
        "paused",
        "resumed",
        "change_scheduled",
        "change_undone",
        "canceled",
        "reactivated",
    ]


def test_pause_too_long_is_a_400(api: APIClient, customer: Any, plans: Any) -> None:
    subscription_id = _create(api, customer)["subscription"]["id"]

    response = api.post(
        f"/api/v1/subscriptions/{subscription_id}/pause", {"cycles": 9}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "pause_too_long"
    assert response.json()["error"]["param"] == "cycles"


def test_renew_a_fixed_term_through_the_api(api: APIClient, make_plan: Any, customer: Any) -> None:
    from tests.subscriptions.conftest import fixed_term

    make_plan("term", phases=[fixed_term("20.00", 2)])
    subscription_id = _create(api, customer, plan="term")["subscription"]["id"]

    response = api.post(f"/api/v1/subscriptions/{subscription_id}/renew", {}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["subscription"]["phase_ends_on"] == "2026-05-15"


def test_the_upcoming_invoice_is_a_dry_run(api: APIClient, customer: Any, plans: Any) -> None:
    subscription_id = _create(api, customer)["subscription"]["id"]
    invoices = Invoice.objects.count()

    body = api.get(f"/api/v1/subscriptions/{subscription_id}/upcoming_invoice").json()

    assert body["billing_date"] == "2026-02-15"
    assert body["invoice"]["total"] == "30.00"
    assert body["invoice"]["lines"][0]["period_start"] == "2026-02-15"
    assert body["invoice"]["lines"][0]["period_end"] == "2026-03-15"
    assert Invoice.objects.count() == invoices


def test_partner_keys_see_and_act_on_their_own_customers_only(
    api_client_for: Any, make_customer: Any, plans: Any, api: APIClient
) -> None:
    acme = partner_create(code="acme", name="Acme", actor=STAFF)
    globex = partner_create(code="globex", name="Globex", actor=STAFF)
    ours, theirs = make_customer(partner=acme), make_customer(partner=globex)
    their_subscription = _create(api, theirs)["subscription"]["id"]
    client = api_client_for(scopes=["read", "write"], partner=acme)

    mine = client.post(
        "/api/v1/subscriptions", {"customer": ours.pk, "plan": "silver"}, format="json"
    )
    foreign_create = client.post(
        "/api/v1/subscriptions", {"customer": theirs.pk, "plan": "silver"}, format="json"
    )
    foreign_read = client.get(f"/api/v1/subscriptions/{their_subscription}")
    foreign_cancel = client.post(
        f"/api/v1/subscriptions/{their_subscription}/cancel", {}, format="json"
    )
    listed = client.get("/api/v1/subscriptions").json()["results"]

    assert mine.status_code == 201
    assert foreign_create.status_code == 404
    assert foreign_read.status_code == 404
    assert foreign_cancel.status_code == 404
    assert foreign_cancel.json()["error"]["code"] == "subscription_not_found"
    assert [s["customer"] for s in listed] == [ours.pk]
    assert not Subscription.objects.get(pk=their_subscription).cancel_at_period_end


def test_a_year_played_through_the_test_clock(api: APIClient, customer: Any, plans: Any) -> None:
    subscription_id = _create(api, customer, plan="trial-monthly")["subscription"]["id"]

    response = api.post("/api/v1/test_clock/advance", {"to": "2027-01-25T00:00:00Z"}, format="json")

    assert response.status_code == 200, response.json()
    days = [d for d in response.json()["days"] if "subscriptions" in d["work"]]
    assert days[0] == {
        "date": "2026-01-25",
        "work": {"subscriptions": {"invoices": 1, "phases_started": 1, "renewed": 1}},
    }
    assert len(days) == 13
    invoices = api.get(f"/api/v1/invoices?subscription={subscription_id}").json()["results"]
    assert len(invoices) == 13
    assert {i["total"] for i in invoices} == {"30.00"}
