"""Autocharge at finalization, and payments recorded by staff."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice, Payment, PaymentAttempt, PaymentMethod
from billing.services import invoice_create, payment_record_offline
from core.errors import ConflictError, ValidationError
from customers.models import Customer

from .conftest import GENERIC_DECLINE, STAFF, VISA, line

pytestmark = pytest.mark.django_db

D = Decimal
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]


def test_an_invoice_of_an_autocharge_customer_with_a_default_card_ends_paid(
    customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(customer, VISA)

    invoice = bill(customer, line("Digital monthly", "31.00"))

    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("31"), D("0"))
    attempt = PaymentAttempt.objects.get()
    assert (attempt.trigger, attempt.status, attempt.amount) == ("autocharge", "succeeded", D("31"))
    assert Payment.objects.get().invoice == invoice


def test_the_charge_waits_for_the_invoice_to_be_committed(
    customer: Customer, save_card: SaveCard, clock: Any, django_capture_on_commit_callbacks: Any
) -> None:
    save_card(customer, VISA)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invoice = invoice_create(
            customer=customer,
            currency="USD",
            billing_reason="subscription_cycle",
            lines=[line("Digital monthly", "31.00")],
            actor=STAFF,
        )

        # Inside the transaction nothing is charged yet.
        assert not PaymentAttempt.objects.exists()
    assert len(callbacks) == 1
    invoice.refresh_from_db()
    assert invoice.status == "open"

    callbacks[0]()

    invoice.refresh_from_db()
    assert invoice.status == "paid"


@pytest.mark.parametrize("case", ["pays_by_invoice", "no_card", "nothing_due", "draft"])
def test_nothing_is_charged_when_there_is_nothing_to_autocharge(
    make_customer: Callable[..., Customer], save_card: SaveCard, bill: Bill, case: str
) -> None:
    customer = make_customer(autocharge=case != "pays_by_invoice")
    if case != "no_card":
        save_card(customer, VISA)
    unit = "0.00" if case == "nothing_due" else "31.00"

    invoice = bill(customer, line("Digital monthly", unit), finalize=case != "draft")

    expected = {"nothing_due": "paid", "draft": "draft"}.get(case, "open")
    assert invoice.status == expected
    assert not PaymentAttempt.objects.exists()
    assert not Payment.objects.exists()


def test_a_declined_autocharge_leaves_the_invoice_open_with_the_decline_recorded(
    customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(customer, GENERIC_DECLINE)

    invoice = bill(customer, line("Digital monthly", "31.00"))

    assert (invoice.status, invoice.amount_due) == ("open", D("31.00"))
    attempt = PaymentAttempt.objects.get()
    assert (attempt.status, attempt.decline_code, attempt.decline_kind) == (
        "declined",
        "generic_decline",
        "soft",
    )


def test_customer_credit_is_used_first_and_only_the_rest_is_charged(
    customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    from billing.services import customer_balance_adjust

    customer_balance_adjust(
        customer=customer, currency="USD", amount=D("10.00"), kind="adjustment", actor=STAFF
    )
    save_card(customer, VISA)

    invoice = bill(customer, line("Digital monthly", "31.00"))

    assert (invoice.status, invoice.credit_applied, invoice.amount_paid) == (
        "paid",
        D("10.00"),
        D("21.00"),
    )
    assert PaymentAttempt.objects.get().amount == D("21.00")


# --- offline payments -----------------------------------------------------------------------------


@pytest.fixture
def open_invoice(make_customer: Callable[..., Customer], bill: Bill) -> Invoice:
    return bill(make_customer(autocharge=False), line("Annual licence", "100.00"))


def test_an_offline_payment_may_pay_part_then_the_rest(open_invoice: Invoice) -> None:
    first = payment_record_offline(
        invoice=open_invoice,
        amount=D("40.00"),
        method="bank_transfer",
        reference="SEPA 2026-001",
        received_on=date(2026, 1, 14),
        actor=STAFF,
    )
    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid, open_invoice.amount_due) == (
        "open",
        D("40.00"),
        D("60.00"),
    )

    second = payment_record_offline(
        invoice=open_invoice,
        amount=D("60.00"),
        method="cheque",
        reference="cheque 889",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    open_invoice.refresh_from_db()
    assert (open_invoice.status, open_invoice.amount_paid, open_invoice.amount_due) == (
        "paid",
        D("100.00"),
        D("0.00"),
    )
    assert [(p.method, p.gateway, p.reference, p.received_on) for p in (first, second)] == [
        ("bank_transfer", "", "SEPA 2026-001", date(2026, 1, 14)),
        ("cheque", "", "cheque 889", date(2026, 1, 15)),
    ]
    assert not PaymentAttempt.objects.exists()


@pytest.mark.parametrize(
    ("amount", "method", "received_on", "code"),
    [
        ("100.01", "cheque", date(2026, 1, 15), "payment_exceeds_amount_due"),
        ("0", "cheque", date(2026, 1, 15), "invalid_amount"),
        ("1.001", "cheque", date(2026, 1, 15), "invalid_amount"),
        ("10", "card", date(2026, 1, 15), "invalid_method"),
        ("10", "cheque", date(2026, 1, 16), "invalid_date"),
    ],
)
def test_bad_offline_payments_are_refused(
    open_invoice: Invoice, amount: str, method: str, received_on: date, code: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        payment_record_offline(
            invoice=open_invoice,
            amount=D(amount),
            method=method,
            reference="",
            received_on=received_on,
            actor=STAFF,
        )

    assert refused.value.code == code
    assert not Payment.objects.exists()


def test_an_offline_payment_of_a_paid_invoice_is_refused(open_invoice: Invoice) -> None:
    payment_record_offline(
        invoice=open_invoice,
        amount=D("100.00"),
        method="cheque",
        reference="",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    with pytest.raises(ConflictError) as refused:
        payment_record_offline(
            invoice=open_invoice,
            amount=D("1.00"),
            method="cheque",
            reference="",
            received_on=date(2026, 1, 15),
            actor=STAFF,
        )

    assert refused.value.code == "invoice_not_open"
    assert Payment.objects.count() == 1
