"""What PostgreSQL itself refuses, whatever the code above it does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    Invoice,
    InvoiceLine,
)
from billing.services import credit_note_create, customer_balance_adjust
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]


def _refused(write: Callable[[], object]) -> str:
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        write()
    return str(refused.value)


def _sql(statement: str, *params: Any) -> Callable[[], None]:
    """A raw statement, past Django's own cascade and protect handling."""

    def run() -> None:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)

    return run


def _recurring_line(invoice: Invoice, **fields: object) -> InvoiceLine:
    values: dict[str, object] = {
        "invoice": invoice,
        "kind": "recurring",
        "description": "Monthly",
        "subscription_id": 5,
        "period_start": date(2026, 1, 15),
        "period_end": date(2026, 2, 15),
        "amount": Decimal("10.00"),
        "total": Decimal("10.00"),
    }
    values.update(fields)
    return InvoiceLine.objects.create(**values)


def test_a_recurring_period_of_a_subscription_is_billed_once(
    customer: Customer, make_invoice: MakeInvoice
):
    first = make_invoice(customer, line(), finalize=False)
    second = make_invoice(customer, line(), finalize=False)
    _recurring_line(first)

    assert "invoice_line_period_billed_once" in _refused(lambda: _recurring_line(second))
    _recurring_line(second, period_start=date(2026, 2, 15), period_end=date(2026, 3, 15))
    _recurring_line(second, subscription_id=6)


def test_a_balance_never_goes_below_zero(customer: Customer):
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("5"), kind="adjustment", actor=STAFF
    )

    message = _refused(lambda: CustomerBalance.objects.update(amount=Decimal("-0.01")))

    assert "customer_balance_not_negative" in message


def test_a_finalized_invoice_has_a_number_and_a_draft_none(
    customer: Customer, make_invoice: MakeInvoice
):
    draft = make_invoice(customer, finalize=False)
    numbered = Invoice.objects.filter(pk=draft.pk)

    assert "invoice_finalized_has_number" in _refused(lambda: numbered.update(status="open"))
    assert "invoice_draft_has_no_number" in _refused(lambda: numbered.update(number="X-1"))


def test_a_finalized_invoice_is_never_deleted_nor_changed(
    customer: Customer, make_invoice: MakeInvoice
):
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    rows = Invoice.objects.filter(pk=invoice.pk)

    assert "never deleted" in _refused(
        _sql("DELETE FROM billing_invoice WHERE id = %s", invoice.pk)
    )
    assert "never change" in _refused(lambda: rows.update(total=Decimal("1.00")))
    assert "never change" in _refused(lambda: rows.update(number="INV-2026-999999"))
    assert "never change" in _refused(lambda: rows.update(status="draft", number=None))
    rows.update(status="uncollectible")  # what happens to it afterwards may move


def test_the_lines_of_a_finalized_invoice_never_change(
    customer: Customer, make_invoice: MakeInvoice
):
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    rows = InvoiceLine.objects.filter(invoice=invoice)

    assert "never change" in _refused(lambda: rows.update(amount=Decimal("1.00")))
    assert "never change" in _refused(lambda: rows.delete())
    assert "never change" in _refused(lambda: _recurring_line(invoice))


def test_issued_credit_notes_and_balance_movements_are_kept_as_they_are(
    customer: Customer, make_invoice: MakeInvoice
):
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")
    notes = CreditNote.objects.all()

    assert "only its status" in _refused(lambda: notes.update(total=Decimal("1.00")))
    assert "only its status" in _refused(_sql("DELETE FROM billing_creditnote"))
    assert "never changed" in _refused(
        lambda: CreditNoteLine.objects.update(amount=Decimal("1.00"))
    )
    assert "never changed" in _refused(lambda: CustomerBalanceTransaction.objects.all().delete())
    notes.update(status="void")


def test_amounts_due_and_credits_are_never_negative(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    rows = Invoice.objects.filter(pk=invoice.pk)

    assert "invoice_amount_due_not_negative" in _refused(
        lambda: rows.update(amount_due=Decimal("-1"))
    )
    assert "invoice_credit_applied_not_negative" in _refused(
        lambda: rows.update(credit_applied=Decimal("-1"))
    )
