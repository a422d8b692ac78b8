"""The ledger and the financial reports through the API (admin scope), after billing flows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.ledger.recognition import recognition_run
from billing.models import Invoice, Payment, PaymentMethod
from billing.selectors import party
from customers.models import Customer

from .conftest import VISA, line

pytestmark = pytest.mark.django_db


@pytest.fixture
def booked(
    clock: Any,
    make_customer: Callable[..., Customer],
    save_card: Callable[..., PaymentMethod],
    bill: Callable[..., Invoice],
) -> Customer:
    """31.00 USD for Jan 15 - Feb 15 paid by card on Jan 15, recognized through Feb 28."""
    clock(datetime(2026, 1, 15, 12, tzinfo=UTC))
    customer = make_customer()
    save_card(customer, VISA)
    bill(
        customer,
        line("Monthly", "31.00", period_start=date(2026, 1, 15), period_end=date(2026, 2, 15)),
    )
    recognition_run(day=date(2026, 2, 28))
    return customer


def test_accounts_list_their_balances(api: APIClient, booked: Customer) -> None:
    accounts = api.get("/api/v1/ledger/accounts?currency=USD").json()["results"]

    balances = {(a["code"], a["party"]): a["balance"] for a in accounts}
    assert balances == {
        ("cash", ""): "31.00",
        ("accounts_receivable", party(booked.pk)): "0.00",
        ("deferred_revenue", ""): "0.00",
        ("subscription_revenue", ""): "31.00",
    }


def test_entries_are_listed_with_their_lines(api: APIClient, booked: Customer) -> None:
    payment = Payment.objects.get()

    entries = api.get(f"/api/v1/ledger/entries?source_type=payment&source_id={payment.pk}")

    (entry,) = entries.json()["results"]
    assert entry["idempotency_key"] == f"payment:{payment.pk}"
    assert [(ln["side"], ln["code"], ln["amount"]) for ln in entry["lines"]] == [
        ("debit", "cash", "31.00"),
        ("credit", "accounts_receivable", "31.00"),
    ]
    assert api.get(f"/api/v1/ledger/entries/{entry['id']}").json() == entry


def test_the_reports(api: APIClient, booked: Customer) -> None:
    trial = api.get("/api/v1/reports/trial_balance?as_of=2026-01-31").json()
    revenue = api.get("/api/v1/reports/revenue?currency=USD").json()
    deferred = api.get(
        "/api/v1/reports/deferred_revenue?currency=USD&start=2026-01-01&end=2026-02-28"
    ).json()

    assert trial["balanced"] is True
    assert trial["totals"] == [{"currency": "USD", "debit": "31.00", "credit": "31.00"}]
    rows = {row["code"]: (row["debit"], row["credit"]) for row in trial["rows"]}
    assert rows["deferred_revenue"] == ("0.00", "14.00")
    assert rows["subscription_revenue"] == ("0.00", "17.00")
    assert [(r["month"], r["recognized"], r["net"]) for r in revenue["rows"]] == [
        ("2026-01-01", "17.00", "17.00"),
        ("2026-02-01", "14.00", "14.00"),
    ]
    assert [(r["month"], r["billed"], r["recognized"], r["closing"]) for r in deferred["rows"]] == [
        ("2026-01-01", "31.00", "17.00", "14.00"),
        ("2026-02-01", "0.00", "14.00", "0.00"),
    ]


def test_a_write_key_sees_no_ledger(
    api_client_for: Callable[..., APIClient], booked: Customer
) -> None:
    writer = api_client_for(scopes=["write"])

    for path in ("/api/v1/ledger/accounts", "/api/v1/ledger/entries", "/api/v1/reports/revenue"):
        assert writer.get(path).status_code == 403
