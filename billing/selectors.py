"""Reads of invoices, credit notes and customer credit balances, for the doors and other apps.

Partner scoping goes through `customers.selectors.customers_visible_to`: a partner's key sees
the invoices, credit notes and balances of its own customers only, and anything else is a 404.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, Sum

from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    Invoice,
    InvoiceLine,
    Refund,
    RefundLine,
)
from core.errors import NotFoundError
from customers.models import Customer, Partner
from customers.selectors import customers_visible_to

ZERO = Decimal("0")


def _visible(queryset: QuerySet, partner: Partner | None) -> QuerySet:
    if partner is None:
        return queryset
    return queryset.filter(customer__in=customers_visible_to(partner=partner).values("pk"))


def _with_lines(invoices: QuerySet[Invoice]) -> QuerySet[Invoice]:
    return invoices.prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.select_related("coupon", "invoice"))
    )


# --- invoices -----------------------------------------------------------------------------------


def invoice_list(
    *,
    partner: Partner | None,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    status: str | None = None,
    number: str | None = None,
) -> QuerySet[Invoice]:
    """Invoices matching every given filter, newest first.

    `subscription_id` matches invoices with at least one line of that subscription.
    """
    invoices = _visible(_with_lines(Invoice.objects.select_related("customer")), partner)
    if customer_id is not None:
        invoices = invoices.filter(customer_id=customer_id)
    if subscription_id is not None:
        invoices = invoices.filter(
            pk__in=InvoiceLine.objects.filter(subscription_id=subscription_id).values("invoice_id")
        )
    if status is not None:
        invoices = invoices.filter(status=status)
    if number is not None:
        invoices = invoices.filter(number=number)
    return invoices.order_by("-id")


def invoices_for_customer(*, customer: Customer) -> QuerySet[Invoice]:
    return invoice_list(partner=None, customer_id=customer.pk)


def invoices_for_subscription(*, subscription_id: int) -> QuerySet[Invoice]:
    return invoice_list(partner=None, subscription_id=subscription_id)


def invoice_get(*, pk: int | str, partner: Partner | None = None) -> Invoice:
    """One invoice with its lines, or `invoice_not_found` (also for another partner's)."""
    try:
        return _visible(_with_lines(Invoice.objects.select_related("customer")), partner).get(
            pk=int(pk)
        )
    except (Invoice.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such invoice: {pk}.", code="invoice_not_found", param="id"
        ) from None


def invoice_with_lines(*, invoice_id: int) -> Invoice:
    return invoice_get(pk=invoice_id)


def invoice_lines(*, invoice: Invoice) -> list[InvoiceLine]:
    return list(InvoiceLine.objects.filter(invoice=invoice).select_related("coupon"))


# --- credit notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creditable:
    """What is left to credit on an invoice line: the pre-tax amount, its tax and the total
    (amount + tax for an exclusive tax; the amount itself when the tax is inside it)."""

    amount: Decimal
    tax: Decimal
    total: Decimal


def invoice_line_creditable(*, invoice: Invoice) -> dict[int, Creditable]:
    """For each line of `invoice`, what issued credit notes have not yet credited.

    Only what the customer was charged can be credited: a line's taxable amount (amount less
    discount) when positive; credit lines and fully discounted lines have nothing to credit.
    """
    credited: dict[int, tuple[Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO))
    rows = (
        CreditNoteLine.objects.filter(
            credit_note__invoice=invoice,
            credit_note__status=CreditNote.Status.ISSUED,
            invoice_line__isnull=False,
        )
        .values("invoice_line_id")
        .annotate(amount=Sum("amount"), tax=Sum("tax_amount"))
    )
    for row in rows:
        credited[row["invoice_line_id"]] = (row["amount"], row["tax"])
    # Refunds made without a credit note give invoice lines back too (a credit note's own
    # refunds are already counted by its lines); a failed refund gave nothing back.
    for row in (
        _direct_refund_lines(invoice)
        .values("invoice_line_id")
        .annotate(amount=Sum("amount"), tax=Sum("tax_amount"))
    ):
        done_amount, done_tax = credited[row["invoice_line_id"]]
        credited[row["invoice_line_id"]] = (done_amount + row["amount"], done_tax + row["tax"])
    remaining: dict[int, Creditable] = {}
    for line in InvoiceLine.objects.filter(invoice=invoice):
        taxable = line.amount - line.discount_amount
        if taxable <= 0:
            remaining[line.pk] = Creditable(ZERO, ZERO, ZERO)
            continue
        done_amount, done_tax = credited[line.pk]
        amount = taxable - done_amount
        tax = line.tax_amount - done_tax
        remaining[line.pk] = Creditable(amount, tax, amount if line.tax_inclusive else amount + tax)
    return remaining


def invoice_creditable_total(*, invoice: Invoice) -> Decimal:
    """What credit notes may still give back on `invoice`, tax included.

    Never more than the invoice's total (its credit lines already lowered what was charged);
    nothing on a draft, a void or an uncollectible invoice.
    """
    if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
        return ZERO
    issued = CreditNote.objects.filter(invoice=invoice, status=CreditNote.Status.ISSUED).aggregate(
        total=Sum("total")
    )["total"]
    refunded = _direct_refund_lines(invoice).aggregate(total=Sum("total"))["total"]
    return max(invoice.total, ZERO) - (issued or ZERO) - (refunded or ZERO)


def _direct_refund_lines(invoice: Invoice) -> QuerySet[RefundLine]:
    return RefundLine.objects.filter(
        invoice_line__invoice=invoice, refund__credit_note__isnull=True
    ).exclude(refund__status=Refund.Status.FAILED)


def credit_notes_for_invoice(*, invoice: Invoice) -> QuerySet[CreditNote]:
    return credit_note_list(partner=None, invoice_id=invoice.pk)


def credit_note_list(
    *,
    partner: Partner | None,
    invoice_id: int | None = None,
    customer_id: int | None = None,
) -> QuerySet[CreditNote]:
    notes = _visible(
        CreditNote.objects.select_related("invoice", "customer").prefetch_related(
            Prefetch("lines", queryset=CreditNoteLine.objects.select_related("credit_note"))
        ),
        partner,
    )
    if invoice_id is not None:
        notes = notes.filter(invoice_id=invoice_id)
    if customer_id is not None:
        notes = notes.filter(customer_id=customer_id)
    return notes.order_by("-id")


def credit_note_get(*, pk: int | str, partner: Partner | None = None) -> CreditNote:
    try:
        return credit_note_list(partner=partner).get(pk=int(pk))
    except (CreditNote.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such credit note: {pk}.", code="credit_note_not_found", param="id"
        ) from None


# --- customer credit balance --------------------------------------------------------------------


def customer_balance(*, customer: Customer, currency: str) -> Decimal:
    """The credit the business owes `customer` in `currency` (0 when there never was any)."""
    amount = (
        CustomerBalance.objects.filter(customer=customer, currency=currency)
        .values_list("amount", flat=True)
        .first()
    )
    return amount if amount is not None else ZERO


def customer_balance_currency(*, customer: Customer) -> str:
    """The currency a customer's balance is shown in: their billing currency, else that of
    their most recently moved balance ("" when they have neither)."""
    if customer.currency:
        return customer.currency
    latest = CustomerBalance.objects.filter(customer=customer).order_by("-updated_at", "-id")
    return latest.values_list("currency", flat=True).first() or ""


def balance_transactions(
    *, customer: Customer, currency: str | None = None
) -> QuerySet[CustomerBalanceTransaction]:
    """The movements of a customer's balance, newest first."""
    transactions = CustomerBalanceTransaction.objects.filter(customer=customer).select_related(
        "invoice", "credit_note"
    )
    if currency is not None:
        transactions = transactions.filter(currency=currency)
    return transactions.order_by("-id")
