"""What PostgreSQL itself refuses: payments rewritten or deleted, two defaults, two open
attempts on one invoice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from billing.models import Invoice, Payment, PaymentAttempt, PaymentMethod
from billing.services import refund_create
from customers.models import Customer

from .conftest import STAFF, TIMEOUT, VISA, line

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(
    customer: Customer, save_card: Callable[..., PaymentMethod], bill: Callable[..., Invoice]
) -> Payment:
    save_card(customer, VISA)
    bill(customer, line("Digital monthly", "31.00"))
    payment = Payment.objects.get()
    refund_create(payment=payment, amount=None, actor=STAFF)
    return payment


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_payment SET amount = 1",
        "UPDATE billing_payment SET invoice_id = NULL",
        "DELETE FROM billing_payment",
        "UPDATE billing_paymentattempt SET amount = 1",
        "UPDATE billing_paymentattempt SET idempotency_key = 'other'",
        "DELETE FROM billing_paymentattempt",
        "UPDATE billing_refund SET amount = 1",
        "DELETE FROM billing_refund",
        "UPDATE billing_refundline SET total = 1",
        "DELETE FROM billing_refundline",
        "UPDATE billing_paymentmethod SET last4 = '0000'",
        "DELETE FROM billing_paymentmethod",
    ],
)
def test_money_that_moved_is_never_rewritten_even_in_raw_sql(paid: Payment, statement: str) -> None:
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


def test_what_happened_next_may_still_be_recorded(paid: Payment) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_payment SET status = 'disputed'")
        cursor.execute("UPDATE billing_paymentmethod SET is_default = false")

    paid.refresh_from_db()
    assert paid.status == "disputed"


def test_a_customer_has_one_default_method(
    customer: Customer, save_card: Callable[..., PaymentMethod]
) -> None:
    first = save_card(customer, VISA)
    second = save_card(customer, VISA, make_default=False)

    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.filter(pk=second.pk).update(is_default=True)
    first.refresh_from_db()
    assert first.is_default


def test_an_invoice_has_one_open_attempt(
    make_customer: Callable[..., Customer],
    save_card: Callable[..., PaymentMethod],
    bill: Callable[..., Invoice],
) -> None:
    from billing.services import invoice_pay_now

    customer = make_customer(autocharge=False)
    save_card(customer, TIMEOUT)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    unknown = invoice_pay_now(invoice=invoice, actor=STAFF)
    assert unknown.status == "unknown"
    fields: dict[str, Any] = {
        f.name: getattr(unknown, f.name)
        for f in PaymentAttempt._meta.concrete_fields
        if f.name != "id"
    }

    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentAttempt.objects.create(
            **{**fields, "attempt_number": 2, "idempotency_key": "second", "status": "pending"}
        )
