"""Refunds, full and partial, direct or executing a credit note; never beyond what is left."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.models import (
    CustomerBalanceTransaction,
    Invoice,
    Payment,
    PaymentMethod,
    Refund,
    SimulatedCharge,
    SimulatedRefund,
)
from billing.selectors import invoice_creditable_total, ledger_reconciliation
from billing.services import (
    credit_note_create,
    payment_record_offline,
    refund_create,
)
from core.errors import ConflictError, ValidationError
from customers.models import Customer

from .conftest import STAFF, VISA, line

pytestmark = pytest.mark.django_db

D = Decimal
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]


@pytest.fixture
def card_payment(customer: Customer, save_card: SaveCard, bill: Bill) -> Payment:
    """90.00 USD paid by card at finalization (a 3-month service period)."""
    save_card(customer, VISA)
    invoice = bill(
        customer,
        line(
            "Quarterly plan",
            "90.00",
            period_start=date(2026, 1, 15),
            period_end=date(2026, 4, 15),
        ),
    )
    assert invoice.status == "paid"
    return Payment.objects.get(invoice=invoice)


def _reconciles() -> None:
    result = ledger_reconciliation()
    assert result.mismatches == []


def test_a_partial_refund_then_the_rest(card_payment: Payment) -> None:
    partial = refund_create(payment=card_payment, amount=D("30.00"), actor=STAFF)

    card_payment.refresh_from_db()
    assert (partial.status, partial.amount, partial.idempotency_key) == (
        "succeeded",
        D("30.00"),
        f"payment-{card_payment.pk}-refund-1",
    )
    assert (card_payment.status, card_payment.amount_refunded) == ("partially_refunded", D("30"))
    assert SimulatedCharge.objects.get().amount_refunded == D("30.00")
    _reconciles()

    rest = refund_create(payment=card_payment, actor=STAFF)

    card_payment.refresh_from_db()
    assert rest.amount == D("60.00")
    assert (card_payment.status, card_payment.amount_refunded) == ("refunded", D("90.00"))
    assert SimulatedRefund.objects.count() == 2
    invoice = card_payment.invoice
    assert invoice is not None
    invoice.refresh_from_db()
    # The invoice stays paid; what it has left to credit is gone.
    assert (invoice.status, invoice.amount_paid) == ("paid", D("90.00"))
    assert invoice_creditable_total(invoice=invoice) == D("0")
    _reconciles()


@pytest.mark.parametrize(
    ("amount", "code"),
    [("90.01", "refund_exceeds_payment"), ("0", "invalid_amount"), ("0.001", "invalid_amount")],
)
def test_a_refund_never_exceeds_what_is_left(card_payment: Payment, amount: str, code: str) -> None:
    with pytest.raises(ValidationError) as refused:
        refund_create(payment=card_payment, amount=D(amount), actor=STAFF)

    assert refused.value.code == code
    assert not Refund.objects.exists()
    assert not SimulatedRefund.objects.exists()


def test_a_refunded_payment_cannot_be_refunded_again(card_payment: Payment) -> None:
    refund_create(payment=card_payment, actor=STAFF)

    with pytest.raises(ConflictError) as refused:
        refund_create(payment=card_payment, amount=D("1.00"), actor=STAFF)

    assert refused.value.code == "payment_not_refundable"
    assert Refund.objects.count() == 1


def test_a_refund_takes_back_what_credit_notes_may_still_give(card_payment: Payment) -> None:
    invoice = card_payment.invoice
    assert invoice is not None
    credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance", amount=D("80.00"))

    with pytest.raises(ValidationError) as refused:
        refund_create(payment=card_payment, amount=D("20.00"), actor=STAFF)

    assert refused.value.code == "refund_exceeds_invoice"
    refund_create(payment=card_payment, amount=D("10.00"), actor=STAFF)
    with pytest.raises(ValidationError) as nothing_left:
        credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance", amount=D("0.01"))
    assert nothing_left.value.code == "credit_exceeds_invoice"
    _reconciles()


def test_an_offline_payment_is_refunded_offline(
    make_customer: Callable[..., Customer], bill: Bill
) -> None:
    invoice = bill(make_customer(autocharge=False), line("Licence", "50.00"))
    payment = payment_record_offline(
        invoice=invoice,
        amount=D("50.00"),
        method="bank_transfer",
        reference="wire 1",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    refund = refund_create(payment=payment, amount=D("20.00"), actor=STAFF)

    assert (refund.status, refund.gateway_reference) == ("succeeded", "")
    assert not SimulatedRefund.objects.exists()
    _reconciles()


# --- credit notes with a refund -------------------------------------------------------------------


def test_a_credit_note_with_a_refund_outcome_refunds_the_payment(
    card_payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = card_payment.invoice
    assert invoice is not None

    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(invoice=invoice, actor=STAFF, outcome="refund", amount=D("45.00"))

    refund = Refund.objects.get()
    assert (refund.credit_note, refund.amount, refund.status, refund.reason) == (
        note,
        D("45.00"),
        "succeeded",
        "credit_note",
    )
    assert SimulatedRefund.objects.get().amount == D("45.00")
    card_payment.refresh_from_db()
    assert (card_payment.status, card_payment.amount_refunded) == (
        "partially_refunded",
        D("45.00"),
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.credited_total, invoice.amount_due) == ("paid", D("0"), D("0"))
    assert invoice_creditable_total(invoice=invoice) == D("45.00")
    _reconciles()


def test_a_credit_note_refund_beyond_the_payments_is_refused(
    make_customer: Callable[..., Customer], bill: Bill
) -> None:
    invoice = bill(make_customer(autocharge=False), line("Licence", "50.00"))
    payment_record_offline(
        invoice=invoice,
        amount=D("20.00"),
        method="cheque",
        reference="",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    with pytest.raises(ValidationError) as refused:
        credit_note_create(invoice=invoice, actor=STAFF, outcome="refund", amount=D("20.01"))

    assert (refused.value.code, refused.value.param) == ("refund_exceeds_payments", "outcome")
    assert not Refund.objects.exists()
    assert not invoice.credit_notes.exists()


def test_a_credit_note_refund_spans_several_payments_newest_first(
    make_customer: Callable[..., Customer], bill: Bill
) -> None:
    invoice = bill(make_customer(autocharge=False), line("Licence", "50.00"))
    older, newer = (
        payment_record_offline(
            invoice=invoice,
            amount=D(amount),
            method="cheque",
            reference=reference,
            received_on=date(2026, 1, 15),
            actor=STAFF,
        )
        for amount, reference in (("30.00", "first"), ("20.00", "second"))
    )

    note = credit_note_create(invoice=invoice, actor=STAFF, outcome="refund", amount=D("35.00"))

    assert list(note.refunds.order_by("id").values_list("payment_id", "amount", "status")) == [
        (newer.pk, D("20.00"), "succeeded"),
        (older.pk, D("15.00"), "succeeded"),
    ]
    _reconciles()


def test_a_failed_credit_note_refund_goes_to_the_customer_balance(
    card_payment: Payment, django_capture_on_commit_callbacks: Any
) -> None:
    invoice = card_payment.invoice
    assert invoice is not None
    # The charge is gone at the gateway (refunded there before): the refund fails.
    SimulatedCharge.objects.update(status="declined")

    with django_capture_on_commit_callbacks(execute=True):
        credit_note_create(invoice=invoice, actor=STAFF, outcome="refund", amount=D("30.00"))

    refund = Refund.objects.get()
    assert (refund.status, refund.error_message) == ("failed", "No such charge.")
    card_payment.refresh_from_db()
    assert (card_payment.status, card_payment.amount_refunded) == ("succeeded", D("0"))
    entry = CustomerBalanceTransaction.objects.get()
    assert (entry.kind, entry.amount, entry.balance_after) == ("credit_note", D("30.00"), D("30"))
    _reconciles()
