"""A year of a subscription played through the API with the test clock: autocharged renewals,
a refund, the ledger balanced and reconciled, and the revenue of each month.

Committed transactions (transactional database): autocharge runs after each invoice commits,
exactly as in production.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice, Payment, PaymentAttempt
from catalog import services as catalog
from catalog.models import PriceList
from catalog.services import PhaseSpec, PriceSpec
from customers.models import Customer

from .conftest import STAFF, VISA

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


@pytest.fixture
def monthly_plan(clock: Any) -> None:
    catalog.price_list_create(
        code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=STAFF
    )
    product = catalog.product_create(code="news", name="The Daily News", actor=STAFF)
    catalog.plan_create(
        product=product,
        code="monthly",
        name="Monthly",
        billing_interval="month",
        phases=[PhaseSpec(kind="evergreen", prices=[PriceSpec(currency="USD", amount=D("31.00"))])],
        actor=STAFF,
    )


def test_a_year_of_autocharged_renewals_books_and_reconciles(
    api: APIClient, customer: Customer, monthly_plan: None
) -> None:
    # Jan 15: a card, then a monthly subscription at 31.00, charged at once.
    saved = api.post(
        "/api/v1/payment_methods",
        {"customer": customer.pk, "card_number": VISA, "exp_month": 12, "exp_year": 2030},
        format="json",
    )
    assert saved.status_code == 201, saved.json()
    created = api.post(
        "/api/v1/subscriptions", {"customer": customer.pk, "plan": "monthly"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert api.get(f"/api/v1/invoices/{created.json()['invoice']['id']}").json()["status"] == "paid"

    # Through June 20, then a refund of 10.00 of the June payment, then to the next Jan 15.
    api.post("/api/v1/test_clock/advance", {"to": "2026-06-20T00:00:00Z"}, format="json")
    june = Payment.objects.order_by("-id").first()
    assert june is not None
    refund = api.post("/api/v1/refunds", {"payment": june.pk, "amount": "10.00"}, format="json")
    assert (refund.status_code, refund.json()["status"]) == (201, "succeeded")
    advanced = api.post("/api/v1/test_clock/advance", {"to": "2027-01-15T00:00:00Z"}, format="json")
    assert advanced.status_code == 200, advanced.json()

    invoices = Invoice.objects.filter(customer=customer)
    assert invoices.count() == 13
    assert set(invoices.values_list("status", flat=True)) == {"paid"}
    assert PaymentAttempt.objects.filter(status="succeeded").count() == 13
    assert Payment.objects.count() == 13

    reconciliation = api.get("/api/v1/reports/reconciliation").json()
    assert (reconciliation["ok"], reconciliation["mismatches"]) == (True, [])
    trial = api.get("/api/v1/reports/trial_balance").json()
    assert trial["balanced"] is True
    accounts = {
        (a["code"], a["party"]): a["balance"]
        for a in api.get("/api/v1/ledger/accounts?currency=USD&limit=200").json()["results"]
    }
    assert accounts[("cash", "")] == "393.00"  # 13 x 31.00 - 10.00
    assert accounts[("accounts_receivable", f"customer:{customer.pk}")] == "0.00"

    revenue = {
        row["month"]: row
        for row in api.get(
            "/api/v1/reports/revenue?currency=USD&start=2026-01-01&end=2026-12-31"
        ).json()["rows"]
    }
    # The first period earns 17 of its 31 days in January (Stripe's example).
    assert revenue["2026-01-01"]["recognized"] == "17.00"
    # Over 2026: eleven whole months, Dec 15-31 of the twelfth, less the refund.
    net = sum((D(row["net"]) for row in revenue.values()), D("0"))
    assert net == D("11") * D("31.00") + D("17.00") - D("10.00")
