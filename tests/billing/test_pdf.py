"""The invoice PDF: a real PDF whose text carries the seller, customer, lines and totals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from pypdf import PdfReader

from billing.models import Invoice
from billing.pdf import invoice_pdf, invoice_pdf_filename
from billing.services import customer_balance_adjust
from catalog.models import Coupon
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]


def _text(document: bytes) -> str:
    assert document.startswith(b"%PDF-")
    reader = PdfReader(BytesIO(document))
    return "\n".join(page.extract_text() for page in reader.pages)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_finalized_invoice(
    californian: Customer, make_invoice: MakeInvoice, percent_coupon: Coupon
) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=Decimal("1.00"), kind="adjustment", actor=STAFF
    )
    invoice = make_invoice(
        californian,
        line(
            "Digital monthly",
            "10.00",
            proration=(17, 31),
            period_start=date(2026, 1, 15),
            period_end=date(2026, 2, 1),
        ),
        line("Seats", "3.33", quantity=Decimal(3), coupon_id=percent_coupon.pk),
    )

    text = _flat(_text(invoice_pdf(invoice)))

    for expected in [
        "Invoice INV-2026-000001",
        "OPEN",
        "Issued on 2026-01-15",
        "Due on 2026-01-15",
        "Subscription Platform",
        "1 Billing Street",
        "Bill to",
        californian.name,
        californian.email,
        "94103, US-CA",
        "Digital monthly",
        "2026-01-15 - 2026-01-31",  # the stored end is exclusive
        "10.00 USD",
        "5.48 USD",
        "0.40 USD (7.25%)",
        "5.88 USD",
        "9.99 USD",
        "-2.50 USD",
        "Subtotal 15.47 USD",
        "Discount -2.50 USD",
        "Tax 0.94 USD",
        "Total 13.91 USD",
        "Credit applied -1.00 USD",
        "Amount due 12.91 USD",
    ]:
        assert expected in text, expected
    assert "DRAFT" not in text
    assert invoice_pdf_filename(invoice) == "INV-2026-000001.pdf"


def test_a_draft_says_so_and_has_no_number(customer: Customer, make_invoice: MakeInvoice) -> None:
    draft = make_invoice(customer, line(unit_amount="9.99"), finalize=False)

    text = _flat(_text(invoice_pdf(draft)))

    assert "DRAFT - NOT A VALID INVOICE" in text
    assert "Draft invoice" in text
    assert "INV-" not in text
    assert "Amount due 0.00 USD" in text
    assert invoice_pdf_filename(draft) == f"draft-invoice-{draft.pk}.pdf"


@pytest.mark.parametrize(
    ("currency", "unit_amount", "expected"),
    [("JPY", "1000", "Total 323 JPY"), ("KWD", "12.345", "Total 2.881 KWD")],
)
def test_amounts_have_the_decimals_of_the_currency(
    make_customer: Callable[..., Customer],
    make_invoice: MakeInvoice,
    currency: str,
    unit_amount: str,
    expected: str,
) -> None:
    customer = make_customer(currency=currency)
    days = (10, 31) if currency == "JPY" else (7, 30)
    invoice = make_invoice(customer, line(unit_amount=unit_amount, proration=days))

    assert expected in _flat(_text(invoice_pdf(invoice)))


def test_a_unit_price_keeps_its_own_decimals(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(
        customer,
        line("API calls", "0.0050", quantity=Decimal(1234), kind="usage"),
    )

    text = _flat(_text(invoice_pdf(invoice)))

    assert "0.005 USD" in text
    assert "6.17 USD" in text  # 1234 x 0.0050


def test_the_seller_comes_from_the_settings(
    customer: Customer, make_invoice: MakeInvoice, settings: Any
) -> None:
    settings.INVOICE_ISSUER_NAME = "Northwind Media Ltd"
    settings.INVOICE_ISSUER_ADDRESS = "7 Harbour Road\nBristol BS1 4QA"

    text = _flat(_text(invoice_pdf(make_invoice(customer))))

    assert "Northwind Media Ltd" in text
    assert "7 Harbour Road Bristol BS1 4QA" in text


def test_a_negative_invoice_shows_the_credit_to_the_balance(
    customer: Customer, make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(customer, line(kind="proration_credit", proration=(10, 31)))

    text = _flat(_text(invoice_pdf(invoice)))

    assert "PAID" in text
    assert "Total -3.23 USD" in text
    assert "Credited to your balance 3.23 USD" in text
    assert "Amount due 0.00 USD" in text
