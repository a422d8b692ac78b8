"""The payments API: saved cards, pay now, offline payments, refunds, credit-note refunds,
reports, and what partners may see."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Invoice, Payment, PaymentAttempt, PaymentMethod, Refund
from core.models import AuditLog
from customers.models import Customer, Partner
from customers.services import partner_create

from .conftest import STAFF, STOLEN, TIMEOUT, VISA, line

pytestmark = pytest.mark.django_db

D = Decimal
Bill = Callable[..., Invoice]


def _error(response: Any) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["param"]


def _save_card(api: APIClient, customer: Customer, number: str = VISA, **extra: Any) -> Any:
    return api.post(
        "/api/v1/payment_methods",
        {
            "customer": customer.pk,
            "card_number": number,
            "exp_month": 12,
            "exp_year": 2030,
            **extra,
        },
        format="json",
    )


@pytest.fixture
def payer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer(autocharge=False)


def test_a_card_is_saved_listed_made_default_and_detached(api: APIClient, payer: Customer) -> None:
    created = _save_card(api, payer)
    other = _save_card(api, payer, "5555555555554444", make_default=False)

    assert created.status_code == other.status_code == 201
    body = created.json()
    assert {
        k: body[k] for k in ("customer", "gateway", "brand", "last4", "is_default", "status")
    } == {
        "customer": payer.pk,
        "gateway": "simulated",
        "brand": "visa",
        "last4": "4242",
        "is_default": True,
        "status": "active",
    }
    assert "card_number" not in body
    listed = api.get(f"/api/v1/payment_methods?customer={payer.pk}").json()["results"]
    assert [m["last4"] for m in listed] == ["4444", "4242"]

    made = api.post(f"/api/v1/payment_methods/{other.json()['id']}/set_default")
    detached = api.post(f"/api/v1/payment_methods/{body['id']}/detach")

    assert made.json()["is_default"] is True
    assert (detached.json()["status"], detached.json()["is_default"]) == ("detached", False)
    assert [m["last4"] for m in api.get("/api/v1/payment_methods").json()["results"]] == ["4444"]
    assert VISA not in repr(list(AuditLog.objects.values_list("before", "after")))


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (
            {"card_number": "4242424242424241", "exp_month": 12, "exp_year": 2030},
            400,
            "invalid_number",
            "card_number",
        ),
        ({}, 400, "invalid", "card_number"),
        ({"card_number": VISA, "payment_method": "pm_1"}, 400, "invalid", "card_number"),
    ],
)
def test_bad_cards_are_refused(
    api: APIClient, payer: Customer, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    response = api.post("/api/v1/payment_methods", {"customer": payer.pk, **body}, format="json")

    assert _error(response) == (status, code, param)
    assert not PaymentMethod.objects.exists()


def test_pay_now_returns_the_attempt_and_pays_the_invoice(
    api: APIClient, payer: Customer, bill: Bill
) -> None:
    _save_card(api, payer)
    invoice = bill(payer, line("Digital monthly", "31.00"))

    response = api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    payment = Payment.objects.get()
    assert {k: body[k] for k in ("invoice", "attempt_number", "status", "amount", "payment")} == {
        "invoice": invoice.pk,
        "attempt_number": 1,
        "status": "succeeded",
        "amount": "31.00",
        "payment": payment.pk,
    }
    assert api.get(f"/api/v1/invoices/{invoice.pk}").json()["status"] == "paid"
    listed = api.get(f"/api/v1/payments?invoice={invoice.pk}").json()["results"]
    assert [(p["id"], p["amount"], p["method"]) for p in listed] == [(payment.pk, "31.00", "card")]
    assert (
        api.get(f"/api/v1/payment_attempts?invoice={invoice.pk}").json()["results"][0]["id"]
        == body["id"]
    )


def test_a_hard_decline_then_pay_now_again_is_blocked(
    api: APIClient, payer: Customer, bill: Bill
) -> None:
    _save_card(api, payer, STOLEN)
    invoice = bill(payer, line("Digital monthly", "31.00"))

    declined = api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json").json()
    blocked = api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json")

    assert (declined["status"], declined["decline_code"], declined["decline_kind"]) == (
        "declined",
        "stolen_card",
        "hard",
    )
    assert _error(blocked) == (409, "payment_retry_blocked", "payment_method")


def test_an_unknown_outcome_is_reconciled_through_the_api(
    api: APIClient, payer: Customer, bill: Bill
) -> None:
    _save_card(api, payer, TIMEOUT)
    invoice = bill(payer, line("Digital monthly", "31.00"))
    unknown = api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json").json()
    assert unknown["status"] == "unknown"

    settled = api.post(f"/api/v1/payment_attempts/{unknown['id']}/reconcile")

    assert (settled.status_code, settled.json()["status"]) == (200, "succeeded")


def test_an_offline_payment_then_a_partial_refund(
    api: APIClient, payer: Customer, bill: Bill
) -> None:
    invoice = bill(payer, line("Licence", "100.00"))

    paid = api.post(
        "/api/v1/payments/offline",
        {
            "invoice": invoice.pk,
            "amount": "100.00",
            "method": "bank_transfer",
            "reference": "wire 42",
            "received_on": "2026-01-14",
        },
        format="json",
    )
    refunded = api.post(
        "/api/v1/refunds", {"payment": paid.json()["id"], "amount": "25.50"}, format="json"
    )

    assert paid.status_code == refunded.status_code == 201
    assert (paid.json()["method"], paid.json()["reference"], paid.json()["received_on"]) == (
        "bank_transfer",
        "wire 42",
        "2026-01-14",
    )
    assert {k: refunded.json()[k] for k in ("amount", "status", "reason", "origin")} == {
        "amount": "25.50",
        "status": "succeeded",
        "reason": "requested_by_customer",
        "origin": "platform",
    }
    payment = api.get(f"/api/v1/payments/{paid.json()['id']}").json()
    assert (payment["status"], payment["amount_refunded"]) == ("partially_refunded", "25.50")
    too_much = api.post(
        "/api/v1/refunds", {"payment": paid.json()["id"], "amount": "74.51"}, format="json"
    )
    assert _error(too_much) == (400, "refund_exceeds_payment", "amount")


def test_a_credit_note_with_a_refund_outcome_through_the_api(
    api: APIClient, payer: Customer, bill: Bill, django_capture_on_commit_callbacks: Any
) -> None:
    _save_card(api, payer)
    invoice = bill(payer, line("Digital monthly", "31.00"))
    api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        note = api.post(
            "/api/v1/credit_notes",
            {"invoice": invoice.pk, "outcome": "refund", "amount": "10.00"},
            format="json",
        )

    assert (note.status_code, note.json()["outcome"]) == (201, "refund")
    refunds = api.get("/api/v1/refunds").json()["results"]
    assert [(r["amount"], r["status"], r["credit_note"]) for r in refunds] == [
        ("10.00", "succeeded", note.json()["id"])
    ]


def test_reports_need_the_admin_scope(
    api_client_for: Callable[..., APIClient], payer: Customer, bill: Bill, clock: Any
) -> None:
    bill(payer, line("Licence", "100.00"))
    writer = api_client_for(scopes=["write"])
    admin = api_client_for(scopes=["admin"])

    assert writer.get("/api/v1/reports/ar_aging").status_code == 403
    aging = admin.get("/api/v1/reports/ar_aging?as_of=2026-02-20").json()
    reconciliation = admin.get("/api/v1/reports/reconciliation").json()

    assert aging == {
        "as_of": "2026-02-20",
        "rows": [
            {
                "currency": "USD",
                "current": "0.00",
                "days_1_30": "0.00",
                "days_31_60": "100.00",
                "days_61_90": "0.00",
                "days_over_90": "0.00",
                "total": "100.00",
                "invoices": 1,
            }
        ],
    }
    assert reconciliation["ok"] is True
    assert reconciliation["mismatches"] == []
    assert reconciliation["checked"]["receivable"] == 1


# --- partners -------------------------------------------------------------------------------------


@pytest.fixture
def partner(clock: Any) -> Partner:
    return partner_create(code="reseller", name="Reseller", actor=STAFF)


def test_a_partner_sees_only_its_customers_payments(
    api: APIClient,
    api_client_for: Callable[..., APIClient],
    partner: Partner,
    make_customer: Callable[..., Customer],
    bill: Bill,
) -> None:
    theirs = make_customer(partner=partner, autocharge=False)
    others = make_customer(autocharge=False)
    for customer in (theirs, others):
        _save_card(api, customer)
    invoice = bill(others, line("Licence", "10.00"))
    api.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json")
    other_method = PaymentMethod.objects.get(customer=others)
    other_payment = Payment.objects.get()
    reseller = api_client_for(scopes=["write"], partner=partner)

    methods = reseller.get("/api/v1/payment_methods").json()["results"]

    assert [m["customer"] for m in methods] == [theirs.pk]
    assert reseller.get("/api/v1/payments").json()["results"] == []
    assert reseller.get(f"/api/v1/payments/{other_payment.pk}").status_code == 404
    assert reseller.get(f"/api/v1/payment_methods/{other_method.pk}").status_code == 404
    assert _error(_save_card(reseller, others)) == (404, "customer_not_found", "customer")
    assert reseller.post(f"/api/v1/invoices/{invoice.pk}/pay", {}, format="json").status_code == 404
    assert _error(
        reseller.post("/api/v1/refunds", {"payment": other_payment.pk}, format="json")
    ) == (404, "payment_not_found", "payment")
    assert not Refund.objects.exists()
    assert PaymentAttempt.objects.count() == 1
