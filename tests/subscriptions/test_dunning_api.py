"""GET /api/v1/dunning_cases: list with filters, retrieve, partner keys see their own only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.services import payment_method_attach
from catalog.models import Plan
from core import services as core_services
from customers.models import Customer
from customers.services import partner_create
from subscriptions.models import DunningCase
from subscriptions.services import subscription_create
from tests.subscriptions.conftest import STAFF, midnight

pytestmark = pytest.mark.django_db(transaction=True)

VISA = "4242424242424242"
DECLINES = "4000000000000341"


@pytest.fixture(autouse=True)
def _simulated(settings: Any) -> None:
    settings.PAYMENT_GATEWAY = "simulated"


def _card(customer: Customer, number: str) -> None:
    payment_method_attach(
        customer=customer, card_number=number, exp_month=12, exp_year=2030, actor=STAFF
    )


@pytest.fixture
def cases(make_customer: Callable[..., Customer], make_plan: Callable[..., Plan]) -> list[Any]:
    """Two customers (one a partner's) whose Feb 15 renewals are declined; the first one then
    pays with a new card on Feb 16 (closed), the second stays open (past due)."""
    plan = make_plan("pro", "30.00")
    partner = partner_create(code="acme", name="Acme", actor=STAFF)
    first = make_customer()
    second = make_customer(partner=partner)
    for customer in (first, second):
        _card(customer, VISA)
        subscription_create(customer=customer, plan=plan, actor=STAFF)
        _card(customer, DECLINES)
    core_services.test_clock_advance(to=midnight(date(2026, 2, 15)), actor=STAFF)
    _card(first, VISA)
    return [first, second, partner]


def test_list_filters_by_customer_status_and_stage(api: APIClient, cases: list[Any]) -> None:
    first, second, _ = cases
    closed = DunningCase.objects.get(customer=first)
    open_case = DunningCase.objects.get(customer=second)

    everything = api.get("/api/v1/dunning_cases").json()["results"]
    assert [row["id"] for row in everything] == [open_case.pk, closed.pk]  # newest first

    by_customer = api.get(f"/api/v1/dunning_cases?customer={first.pk}").json()["results"]
    assert [(row["id"], row["status"], row["outcome"]) for row in by_customer] == [
        (closed.pk, "closed", "recovered")
    ]
    still_open = api.get("/api/v1/dunning_cases?status=open&stage=past_due").json()["results"]
    assert [row["id"] for row in still_open] == [open_case.pk]
    assert api.get("/api/v1/dunning_cases?stage=blocked").json()["results"] == []

    refused = api.get("/api/v1/dunning_cases?status=maybe")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "status"


def test_retrieve_shows_the_case(api: APIClient, cases: list[Any]) -> None:
    _, second, _ = cases
    case = DunningCase.objects.get(customer=second)

    shown = api.get(f"/api/v1/dunning_cases/{case.pk}")

    assert shown.status_code == 200
    body = shown.json()
    assert {key: body[key] for key in body if key not in {"first_failed_at", "created_at"}} == {
        "id": case.pk,
        "invoice": case.invoice_id,
        "customer": second.pk,
        "subscriptions": list(case.subscriptions.values_list("pk", flat=True)),
        "status": "open",
        "stage": "past_due",
        "outcome": None,
        "first_failed_on": "2026-02-15",
        "next_retry_on": "2026-02-16",
        "retries": 0,
        "last_retry_on": None,
        "attempts": 1,
        "last_decline_code": "generic_decline",
        "last_decline_kind": "soft",
        "final_action_on": "2026-03-01",
        "closed_at": None,
    }
    assert api.get("/api/v1/dunning_cases/999999").json()["error"]["code"] == (
        "dunning_case_not_found"
    )


def test_a_partner_key_sees_its_own_customers_cases_only(
    api_client_for: Callable[..., APIClient], cases: list[Any]
) -> None:
    first, second, partner = cases
    client = api_client_for(scopes=["read"], partner=partner)
    theirs = DunningCase.objects.get(customer=second)
    other = DunningCase.objects.get(customer=first)

    listed = client.get("/api/v1/dunning_cases").json()["results"]

    assert [row["id"] for row in listed] == [theirs.pk]
    assert client.get(f"/api/v1/dunning_cases/{theirs.pk}").status_code == 200
    hidden = client.get(f"/api/v1/dunning_cases/{other.pk}")
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "dunning_case_not_found")
    assert client.get(f"/api/v1/dunning_cases?customer={first.pk}").json()["results"] == []
