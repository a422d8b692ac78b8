"""Invoice PDFs, rendered from `templates/pdf/invoice.html` with xhtml2pdf (pure Python).

Amounts are formatted here, in the invoice currency with its own decimals, so the template only
places text.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from xhtml2pdf import pisa

from billing.models import Invoice, InvoiceLine
from core.money import format_amount, minor_units

TEMPLATE = "pdf/invoice.html"


class InvoicePdfError(RuntimeError):
    """The renderer reported errors: a broken template, not a user mistake."""


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF document (drafts carry a DRAFT mark and no number)."""
    html = render_to_string(TEMPLATE, invoice_pdf_context(invoice))
    output = BytesIO()
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if result.err:
        raise InvoicePdfError(f"Rendering invoice {invoice.pk} as PDF failed ({result.err}).")
    return output.getvalue()


def invoice_pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf" if invoice.number else f"draft-invoice-{invoice.pk}.pdf"


def invoice_pdf_context(invoice: Invoice) -> dict[str, Any]:
    currency = invoice.currency

    def money(amount: Decimal) -> str:
        return f"{format_amount(amount, currency)} {currency}"

    customer = invoice.customer
    place = ", ".join(
        part
        for part in (
            customer.postal_code,
            f"{customer.country}-{customer.region}" if customer.region else customer.country,
        )
        if part
    )
    lines = list(invoice.lines.all())
    return {
        "invoice": invoice,
        "is_draft": invoice.status == Invoice.Status.DRAFT,
        "status_label": invoice.get_status_display(),
        "title": f"Invoice {invoice.number}" if invoice.number else "Draft invoice",
        "issuer_name": settings.INVOICE_ISSUER_NAME,
        "issuer_address": settings.INVOICE_ISSUER_ADDRESS.splitlines(),
        "customer": customer,
        "customer_place": place,
        "issued_on": _day(invoice.issued_on),
        "due_on": _day(invoice.due_on),
        "lines": [_line_row(line, money, currency) for line in lines],
        "has_discount": invoice.discount_total != 0,
        "totals": _totals(invoice, money),
        "amount_due": money(invoice.amount_due),
    }


def _line_row(line: InvoiceLine, money: Any, currency: str) -> dict[str, str]:
    period = ""
    if line.period_start is not None and line.period_end is not None:
        # Stored ends are exclusive; a reader expects the last day of service.
        period = f"{_day(line.period_start)} - {_day(line.period_end - timedelta(days=1))}"
    tax = ""
    if line.tax_percent:
        percent = f"{line.tax_percent.normalize():f}%"
        tax = f"{money(line.tax_amount)} ({percent}{' incl.' if line.tax_inclusive else ''})"
    return {
        "description": line.description,
        "kind": line.get_kind_display(),
        "period": period,
        "quantity": f"{line.quantity.normalize():f}",
        "unit_amount": _unit_price(line.unit_amount, currency),
        "amount": money(line.amount),
        "discount": money(-line.discount_amount) if line.discount_amount else "",
        "tax": tax,
        "total": money(line.total),
    }


def _totals(invoice: Invoice, money: Any) -> list[tuple[str, str]]:
    rows = [("Subtotal", money(invoice.subtotal))]
    if invoice.discount_total:
        rows.append(("Discount", money(-invoice.discount_total)))
    if invoice.tax_total:
        rows.append(("Tax", money(invoice.tax_total)))
    rows.append(("Total", money(invoice.total)))
    if invoice.total < 0:
        rows.append(("Credited to your balance", money(-invoice.total)))
    if invoice.credit_applied:
        rows.append(("Credit applied", money(-invoice.credit_applied)))
    if invoice.credited_total:
        rows.append(("Credit notes", money(-invoice.credited_total)))
    if invoice.amount_paid:
        rows.append(("Paid", money(-invoice.amount_paid)))
    return rows


def _unit_price(amount: Decimal, currency: str) -> str:
    """A unit price keeps the decimals it has (0.0050 USD per call), at least the currency's."""
    exponent = amount.normalize().as_tuple().exponent
    places = max(-exponent if isinstance(exponent, int) else 0, minor_units(currency))
    return f"{amount:.{places}f} {currency}"


def _day(day: date | None) -> str:
    return day.isoformat() if day is not None else ""
