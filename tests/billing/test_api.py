"""The billing API: invoices, credit notes and customer balances, and what partners may see."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import CreditNote, CustomerBalanceTransaction, Invoice
from billing.services import customer_balance_adjust
from core.models import AuditLog
from customers.models import Customer, Partner
from customers.services import partner_create
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]


def _error(response: Any) -> tuple[int, str, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["type"], error["code"], error["param"]


@pytest.fixture
def invoice(californian: Customer, make_invoice: MakeInvoice) -> Invoice:
    return make_invoice(
        californian,
        line(
            "Digital monthly",
            "10.00",
            proration=(17, 31),
            subscription_id=12,
            period_start=date(2026, 1, 15),
            period_end=date(2026, 2, 1),
        ),
        line("Add-on", "20.00", subscription_id=13),
    )


# --- invoices -----------------------------------------------------------------------------------


def test_an_invoice_is_retrieved_with_its_lines_and_amounts_as_strings(
    api: APIClient, invoice: Invoice
) -> None:
    response = api.get(f"/api/v1/invoices/{invoice.pk}")

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ["number", "status", "currency", "customer"]} == {
        "number": "INV-2026-000001",
        "status": "open",
        "currency": "USD",
        "customer": invoice.customer_id,
    }
    assert [body[key] for key in ["subtotal", "discount_total", "tax_total", "total"]] == [
        "25.48",
        "0.00",
        "1.85",
        "27.33",
    ]
    assert [body[key] for key in ["credit_applied", "amount_due", "issued_on", "due_on"]] == [
        "0.00",
        "27.33",
        "2026-01-15",
        "2026-01-15",
    ]
    first = body["lines"][0]
    assert {
        key: first[key]
        for key in [
            "kind",
            "description",
            "subscription_id",
            "period_start",
            "period_end",
            "proration_days",
            "period_days",
            "quantity",
            "unit_amount",
            "amount",
            "discount_amount",
            "tax_percent",
            "tax_inclusive",
            "tax_amount",
            "total",
            "coupon",
        ]
    } == {
        "kind": "recurring",
        "description": "Digital monthly",
        "subscription_id": 12,
        "period_start": "2026-01-15",
        "period_end": "2026-02-01",
        "proration_days": 17,
        "period_days": 31,
        "quantity": "1",
        "unit_amount": "10.00",
        "amount": "5.48",
        "discount_amount": "0.00",
        "tax_percent": "7.2500",
        "tax_inclusive": False,
        "tax_amount": "0.40",
        "total": "5.88",
        "coupon": None,
    }


def test_jpy_amounts_have_no_decimals(
    api: APIClient, make_customer: Callable[..., Customer], make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(
        make_customer(currency="JPY"), line(unit_amount="1000", proration=(10, 31))
    )

    body = api.get(f"/api/v1/invoices/{invoice.pk}").json()

    assert (body["total"], body["lines"][0]["unit_amount"], body["lines"][0]["amount"]) == (
        "323",
        "1000",
        "323",
    )


def test_invoices_are_listed_newest_first_with_filters(
    api: APIClient,
    invoice: Invoice,
    customer: Customer,
    californian: Customer,
    make_invoice: MakeInvoice,
) -> None:
    other = make_invoice(customer, line(subscription_id=99))
    draft = make_invoice(californian, line(subscription_id=13), finalize=False)

    def ids(**params: Any) -> list[int]:
        response = api.get("/api/v1/invoices", params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [draft.pk, other.pk, invoice.pk]
    assert ids(customer=californian.pk) == [draft.pk, invoice.pk]
    assert ids(subscription=13) == [draft.pk, invoice.pk]
    assert ids(subscription=12) == [invoice.pk]
    assert ids(status="draft") == [draft.pk]
    assert ids(number="INV-2026-000002") == [other.pk]
    assert ids(customer=californian.pk, status="open") == [invoice.pk]
    assert _error(api.get("/api/v1/invoices", {"status": "lost"}))[2:] == (
        "invalid_choice",
        "status",
    )


def test_a_one_off_invoice_is_created(api: APIClient, californian: Customer) -> None:
    response = api.post(
        "/api/v1/invoices",
        {
            "customer": californian.pk,
            "items": [
                {"description": "Consulting hour", "quantity": "2", "unit_amount": "19.99"},
                {"description": "Shipping", "unit_amount": "5.00", "tax": False},
            ],
            "memo": "Thank you",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["number"], body["status"], body["billing_reason"], body["total"]) == (
        "INV-2026-000001",
        "open",
        "manual",
        "47.88",
    )
    assert [(row["kind"], row["total"]) for row in body["lines"]] == [
        ("one_off", "42.88"),
        ("one_off", "5.00"),
    ]
    entry = AuditLog.objects.get(action="invoice.create")
    assert entry.actor_type == "api_key"


def test_a_one_off_draft_then_finalized(api: APIClient, customer: Customer) -> None:
    created = api.post(
        "/api/v1/invoices",
        {
            "customer": customer.pk,
            "finalize": False,
            "items": [{"description": "Setup", "unit_amount": "50"}],
        },
        format="json",
    ).json()
    assert (created["status"], created["number"]) == ("draft", None)

    finalized = api.post(f"/api/v1/invoices/{created['id']}/finalize")

    assert finalized.status_code == 200
    assert (finalized.json()["status"], finalized.json()["number"]) == ("open", "INV-2026-000001")
    again = api.post(f"/api/v1/invoices/{created['id']}/finalize")
    assert _error(again) == (409, "conflict_error", "invoice_not_draft", None)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"items": [{"description": "x", "unit_amount": "1"}]}, 400, "required", "customer"),
        (
            {"customer": 0, "items": [{"description": "x", "unit_amount": "1"}]},
            400,
            "min_value",
            "customer",
        ),
        ({"customer": "{customer}", "items": []}, 400, "empty", "items"),
        (
            {"customer": "{customer}", "items": [{"description": "x", "unit_amount": "1.999"}]},
            400,
            "invalid_amount",
            "items[0].unit_amount",
        ),
        (
            {"customer": "{customer}", "items": [{"description": "x", "unit_amount": 1.5}]},
            400,
            "invalid",
            "items[0].unit_amount",
        ),
        (
            {
                "customer": "{customer}",
                "items": [{"description": "x", "unit_amount": "1", "quantity": "0"}],
            },
            400,
            "invalid_quantity",
            "items[0].quantity",
        ),
        (
            {
                "customer": "{customer}",
                "currency": "EUR",
                "items": [{"description": "x", "unit_amount": "1"}],
            },
            400,
            "currency_mismatch",
            "currency",
        ),
        (
            {"customer": 999999, "items": [{"description": "x", "unit_amount": "1"}]},
            404,
            "customer_not_found",
            "customer",
        ),
    ],
)
def test_bad_one_off_invoices_are_refused_with_the_error_shape(
    api: APIClient,
    customer: Customer,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str,
) -> None:
    if body.get("customer") == "{customer}":
        body = {**body, "customer": customer.pk}

    response = api.post("/api/v1/invoices", body, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["param"] == param
    assert not Invoice.objects.exists()


def test_a_customer_without_a_currency_needs_one(
    api: APIClient, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer()
    items = [{"description": "Fee", "unit_amount": "3"}]

    missing = api.post("/api/v1/invoices", {"customer": customer.pk, "items": items}, format="json")
    given = api.post(
        "/api/v1/invoices",
        {"customer": customer.pk, "currency": "gbp", "items": items},
        format="json",
    )

    assert _error(missing) == (400, "invalid_request_error", "currency_required", "currency")
    assert (given.status_code, given.json()["currency"], given.json()["total"]) == (
        201,
        "GBP",
        "3.00",
    )


def test_void_and_mark_uncollectible(
    api: APIClient, customer: Customer, make_invoice: MakeInvoice
) -> None:
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("2"), kind="adjustment", actor=STAFF
    )
    to_void = make_invoice(customer, line(unit_amount="9.99"))
    to_write_off = make_invoice(customer, line(unit_amount="9.99"))

    voided = api.post(f"/api/v1/invoices/{to_void.pk}/void")
    written_off = api.post(f"/api/v1/invoices/{to_write_off.pk}/mark_uncollectible")

    assert (voided.status_code, voided.json()["status"], voided.json()["amount_due"]) == (
        200,
        "void",
        "0.00",
    )
    assert voided.json()["number"] == "INV-2026-000001"
    assert (written_off.json()["status"], written_off.json()["amount_due"]) == (
        "uncollectible",
        "9.99",
    )
    assert _error(api.post(f"/api/v1/invoices/{to_void.pk}/void")) == (
        409,
        "conflict_error",
        "invoice_not_open",
        None,
    )
    assert api.get(f"/api/v1/customers/{customer.pk}/balance").json()["balance"] == "2.00"


def test_drafts_are_deleted_finalized_invoices_are_not(
    api: APIClient, customer: Customer, make_invoice: MakeInvoice
) -> None:
    draft = make_invoice(customer, finalize=False)
    finalized = make_invoice(customer)

    deleted = api.delete(f"/api/v1/invoices/{draft.pk}")
    refused = api.delete(f"/api/v1/invoices/{finalized.pk}")

    assert deleted.status_code == 204
    assert not Invoice.objects.filter(pk=draft.pk).exists()
    assert _error(refused) == (409, "conflict_error", "invoice_not_draft", None)
    assert _error(api.get(f"/api/v1/invoices/{draft.pk}")) == (
        404,
        "invalid_request_error",
        "invoice_not_found",
        "id",
    )


@pytest.mark.parametrize("accept", [None, "application/pdf", "*/*", "application/json"])
def test_the_pdf_is_downloaded(api: APIClient, invoice: Invoice, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}

    response = api.get(f"/api/v1/invoices/{invoice.pk}/pdf", headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="INV-2026-000001.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_the_pdf_of_a_missing_invoice_is_a_json_404(api: APIClient, clock: Any) -> None:
    response = api.get("/api/v1/invoices/424242/pdf", headers={"Accept": "application/pdf"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "invoice_not_found"


def test_a_replayed_create_makes_one_invoice(api: APIClient, customer: Customer) -> None:
    body = {"customer": customer.pk, "items": [{"description": "Fee", "unit_amount": "3"}]}
    headers = {"Idempotency-Key": "one-off-1"}

    first = api.post("/api/v1/invoices", body, format="json", headers=headers)
    second = api.post("/api/v1/invoices", body, format="json", headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Invoice.objects.count() == 1


# --- credit notes -------------------------------------------------------------------------------


def test_credit_notes_are_created_listed_and_retrieved(api: APIClient, invoice: Invoice) -> None:
    digital, addon = invoice.lines.order_by("position")

    by_lines = api.post(
        "/api/v1/credit_notes",
        {
            "invoice": invoice.pk,
            "outcome": "reduce_amount_due",
            "reason": "product_unsatisfactory",
            "lines": [{"invoice_line": addon.pk, "amount": "5.00"}],
        },
        format="json",
    )
    by_amount = api.post(
        "/api/v1/credit_notes",
        {"invoice": invoice.pk, "outcome": "credit_balance", "amount": "2.00", "memo": "Sorry"},
        format="json",
    )

    assert by_lines.status_code == 201, by_lines.json()
    note = by_lines.json()
    assert {k: note[k] for k in ["number", "invoice", "outcome", "reason", "total"]} == {
        "number": "CN-2026-000001",
        "invoice": invoice.pk,
        "outcome": "reduce_amount_due",
        "reason": "product_unsatisfactory",
        "total": "5.36",
    }
    assert note["lines"] == [
        {
            "id": note["lines"][0]["id"],
            "invoice_line": addon.pk,
            "description": "Add-on",
            "amount": "5.00",
            "tax_amount": "0.36",
            "total": "5.36",
        }
    ]
    assert by_amount.status_code == 201
    assert (by_amount.json()["total"], by_amount.json()["memo"]) == ("2.00", "Sorry")
    assert api.get(f"/api/v1/invoices/{invoice.pk}").json()["amount_due"] == "21.97"
    listed = api.get("/api/v1/credit_notes", {"invoice": invoice.pk}).json()["results"]
    assert [row["number"] for row in listed] == ["CN-2026-000002", "CN-2026-000001"]
    assert (
        api.get("/api/v1/credit_notes", {"customer": invoice.customer_id + 1000}).json()["results"]
        == []
    )
    retrieved = api.get(f"/api/v1/credit_notes/{note['id']}")
    assert retrieved.json() == note
    assert digital.pk != addon.pk


def test_a_whole_invoice_is_credited_when_neither_lines_nor_amount_are_given(
    api: APIClient, invoice: Invoice
) -> None:
    response = api.post(
        "/api/v1/credit_notes", {"invoice": invoice.pk, "outcome": "credit_balance"}, format="json"
    )

    assert (response.status_code, response.json()["total"]) == (201, "27.33")
    balance = api.get(f"/api/v1/customers/{invoice.customer_id}/balance").json()
    assert balance["balance"] == "27.33"
    assert balance["transactions"][0]["kind"] == "credit_note"
    assert balance["transactions"][0]["credit_note"] == response.json()["id"]


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"outcome": "refund"}, 400, "refund_exceeds_payments", "outcome"),
        ({"outcome": "cash"}, 400, "invalid_choice", "outcome"),
        ({"outcome": "credit_balance", "amount": "-1"}, 400, "negative", "amount"),
        (
            {"outcome": "credit_balance", "amount": "100.00"},
            400,
            "credit_exceeds_invoice",
            "amount",
        ),
        (
            {"outcome": "credit_balance", "lines": [{"invoice_line": 999999, "amount": "1"}]},
            400,
            "line_not_on_invoice",
            "lines[0].invoice_line",
        ),
        (
            {"outcome": "credit_balance", "lines": [], "amount": "1"},
            400,
            "empty",
            "lines",
        ),
    ],
)
def test_bad_credit_notes_are_refused(
    api: APIClient, invoice: Invoice, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    response = api.post("/api/v1/credit_notes", {"invoice": invoice.pk, **body}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["param"] == param
    assert not CreditNote.objects.exists()


# --- balances -----------------------------------------------------------------------------------


def test_a_balance_is_read_and_adjusted_by_an_admin_key(api: APIClient, customer: Customer) -> None:
    empty = api.get(f"/api/v1/customers/{customer.pk}/balance")
    credited = api.post(
        f"/api/v1/customers/{customer.pk}/balance",
        {"amount": "15.00", "memo": "Goodwill"},
        format="json",
    )
    used = api.post(
        f"/api/v1/customers/{customer.pk}/balance",
        {"amount": "-5", "memo": "Correction"},
        format="json",
    )

    assert empty.json() == {
        "customer": customer.pk,
        "currency": "USD",
        "balance": "0.00",
        "transactions": [],
    }
    assert (credited.status_code, credited.json()["balance"]) == (201, "15.00")
    body = used.json()
    assert body["balance"] == "10.00"
    assert [
        (t["kind"], t["amount"], t["balance_after"], t["memo"]) for t in body["transactions"]
    ] == [
        ("adjustment", "-5.00", "10.00", "Correction"),
        ("adjustment", "15.00", "15.00", "Goodwill"),
    ]
    overdraw = api.post(
        f"/api/v1/customers/{customer.pk}/balance",
        {"amount": "-10.01", "memo": "Too much"},
        format="json",
    )
    assert _error(overdraw) == (400, "invalid_request_error", "insufficient_balance", "amount")
    assert CustomerBalanceTransaction.objects.count() == 2


def test_a_balance_adjustment_needs_the_admin_scope_and_a_memo(
    api: APIClient, api_client_for: Callable[..., APIClient], customer: Customer
) -> None:
    writer = api_client_for(scopes=["write"])
    url = f"/api/v1/customers/{customer.pk}/balance"

    forbidden = writer.post(url, {"amount": "1", "memo": "x"}, format="json")
    no_memo = api.post(url, {"amount": "1"}, format="json")

    assert forbidden.status_code == 403
    assert writer.get(url).status_code == 200
    assert _error(no_memo)[2:] == ("required", "memo")
    assert not CustomerBalanceTransaction.objects.exists()


def test_a_balance_in_another_currency_is_read_by_asking(
    api: APIClient, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer()
    nothing = api.get(f"/api/v1/customers/{customer.pk}/balance").json()
    api.post(
        f"/api/v1/customers/{customer.pk}/balance",
        {"amount": "700", "currency": "JPY", "memo": "Welcome"},
        format="json",
    )

    assert nothing == {
        "customer": customer.pk,
        "currency": None,
        "balance": None,
        "transactions": [],
    }
    assert api.get(f"/api/v1/customers/{customer.pk}/balance").json()["balance"] == "700"
    assert (
        api.get(f"/api/v1/customers/{customer.pk}/balance", {"currency": "eur"}).json()["balance"]
        == "0.00"
    )
    assert _error(api.get(f"/api/v1/customers/{customer.pk}/balance", {"currency": "ZZZ"})) == (
        400,
        "invalid_request_error",
        "invalid_currency",
        "currency",
    )


# --- partner isolation --------------------------------------------------------------------------


@pytest.fixture
def acme(clock: Any) -> Partner:
    return partner_create(code="acme", name="Acme", actor=STAFF)


@pytest.fixture
def globex(clock: Any) -> Partner:
    return partner_create(code="globex", name="Globex", actor=STAFF)


def test_a_partner_sees_and_acts_on_its_own_customers_documents_only(
    api_client_for: Callable[..., APIClient],
    make_customer: Callable[..., Customer],
    make_invoice: MakeInvoice,
    acme: Partner,
    globex: Partner,
) -> None:
    ours = make_customer(currency="USD", partner=acme)
    theirs = make_customer(currency="USD", partner=globex)
    direct = make_customer(currency="USD")
    our_invoice = make_invoice(ours, line())
    their_invoice = make_invoice(theirs, line())
    direct_invoice = make_invoice(direct, line())
    client = api_client_for(scopes=["write"], partner=acme)

    listed = client.get("/api/v1/invoices").json()["results"]
    filtered = client.get("/api/v1/invoices", {"customer": theirs.pk}).json()["results"]

    assert [row["id"] for row in listed] == [our_invoice.pk]
    assert filtered == []
    for foreign in (their_invoice, direct_invoice):
        for method, path in [
            ("get", f"/api/v1/invoices/{foreign.pk}"),
            ("get", f"/api/v1/invoices/{foreign.pk}/pdf"),
            ("post", f"/api/v1/invoices/{foreign.pk}/void"),
            ("post", f"/api/v1/invoices/{foreign.pk}/mark_uncollectible"),
            ("delete", f"/api/v1/invoices/{foreign.pk}"),
        ]:
            response = getattr(client, method)(path)
            assert _error(response) == (404, "invalid_request_error", "invoice_not_found", "id")
        credit = client.post(
            "/api/v1/credit_notes",
            {"invoice": foreign.pk, "outcome": "credit_balance"},
            format="json",
        )
        assert _error(credit)[2] == "invoice_not_found"
    assert _error(client.get(f"/api/v1/customers/{theirs.pk}/balance"))[2] == "customer_not_found"
    one_off = client.post(
        "/api/v1/invoices",
        {"customer": theirs.pk, "items": [{"description": "Fee", "unit_amount": "1"}]},
        format="json",
    )
    assert _error(one_off)[2] == "customer_not_found"
    assert CreditNote.objects.count() == 0
    assert Invoice.objects.filter(status="open").count() == 3

    own = client.post(
        "/api/v1/credit_notes",
        {"invoice": our_invoice.pk, "outcome": "credit_balance"},
        format="json",
    )
    assert own.status_code == 201
    assert client.get(f"/api/v1/customers/{ours.pk}/balance").json()["balance"] == "10.00"
    assert [row["id"] for row in client.get("/api/v1/credit_notes").json()["results"]] == [
        own.json()["id"]
    ]
    admin_notes = api_client_for(scopes=["read"]).get("/api/v1/credit_notes").json()["results"]
    assert len(admin_notes) == 1
    assert client.get(f"/api/v1/invoices/{our_invoice.pk}/pdf").status_code == 200
