"""Reads of invoices, credit notes and customer credit balances, for the doors and other apps.

Partner scoping goes through `customers.selectors.customers_visible_to`: a partner's key sees
the invoices, credit notes and balances of its own customers only, and anything else is a 404.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, Sum

from billing.ledger.models import Account, AccountCode
from billing.ledger.reports import deferred_revenue_reconciliation, ledger_check
from billing.ledger.selectors import account_balance, party_balances
from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    Dispute,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    Refund,
    RefundLine,
)
from core.errors import NotFoundError
from customers.models import Customer, Partner
from customers.selectors import customers_visible_to

ZERO = Decimal("0")


def party(customer_id: int) -> str:
    """A customer's sub-ledger in the ledger (their receivable and customer credit)."""
    return f"customer:{customer_id}"


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


# --- payments -----------------------------------------------------------------------------------


def payment_method_list(
    *, partner: Partner | None, customer_id: int | None = None, include_detached: bool = False
) -> QuerySet[PaymentMethod]:
    methods = _visible(PaymentMethod.objects.all(), partner)
    if customer_id is not None:
        methods = methods.filter(customer_id=customer_id)
    if not include_detached:
        methods = methods.filter(status=PaymentMethod.Status.ACTIVE)
    return methods.order_by("-id")


def payment_method_get(*, pk: int | str, partner: Partner | None = None) -> PaymentMethod:
    try:
        return _visible(PaymentMethod.objects.select_related("customer"), partner).get(pk=int(pk))
    except (PaymentMethod.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such payment method: {pk}.", code="payment_method_not_found", param="id"
        ) from None


def payment_list(
    *,
    partner: Partner | None,
    customer_id: int | None = None,
    invoice_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Payment]:
    payments = _visible(Payment.objects.select_related("invoice"), partner)
    if customer_id is not None:
        payments = payments.filter(customer_id=customer_id)
    if invoice_id is not None:
        payments = payments.filter(invoice_id=invoice_id)
    if status is not None:
        payments = payments.filter(status=status)
    return payments.order_by("-id")


def payment_get(*, pk: int | str, partner: Partner | None = None) -> Payment:
    try:
        return payment_list(partner=partner).get(pk=int(pk))
    except (Payment.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such payment: {pk}.", code="payment_not_found", param="id"
        ) from None


def payment_attempt_list(
    *,
    partner: Partner | None,
    invoice_id: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
) -> QuerySet[PaymentAttempt]:
    attempts = _visible(PaymentAttempt.objects.select_related("invoice", "payment_method"), partner)
    if invoice_id is not None:
        attempts = attempts.filter(invoice_id=invoice_id)
    if customer_id is not None:
        attempts = attempts.filter(customer_id=customer_id)
    if status is not None:
        attempts = attempts.filter(status=status)
    return attempts.order_by("-id")


def payment_attempt_get(*, pk: int | str, partner: Partner | None = None) -> PaymentAttempt:
    try:
        return payment_attempt_list(partner=partner).get(pk=int(pk))
    except (PaymentAttempt.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such payment attempt: {pk}.", code="payment_attempt_not_found", param="id"
        ) from None


def latest_payment_attempt(*, customer: Customer) -> PaymentAttempt | None:
    """The customer's most recently settled charge attempt (for dunning and the portal)."""
    return (
        PaymentAttempt.objects.filter(customer=customer)
        .exclude(status__in=[PaymentAttempt.Status.PENDING, PaymentAttempt.Status.UNKNOWN])
        .order_by("-resolved_at", "-id")
        .first()
    )


def refund_list(
    *, partner: Partner | None, payment_id: int | None = None, customer_id: int | None = None
) -> QuerySet[Refund]:
    refunds = _visible(Refund.objects.select_related("payment"), partner)
    if payment_id is not None:
        refunds = refunds.filter(payment_id=payment_id)
    if customer_id is not None:
        refunds = refunds.filter(customer_id=customer_id)
    return refunds.order_by("-id")


def refund_get(*, pk: int | str, partner: Partner | None = None) -> Refund:
    try:
        return refund_list(partner=partner).get(pk=int(pk))
    except (Refund.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(f"No such refund: {pk}.", code="refund_not_found", param="id") from None


# --- receivables aging and reconciliation with the ledger ---------------------------------------

AGING_BUCKETS = ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")


@dataclass(frozen=True)
class AgingRow:
    """What open invoices still ask in one currency, by how late they are."""

    currency: str
    current: Decimal  # not yet due
    days_1_30: Decimal
    days_31_60: Decimal
    days_61_90: Decimal
    days_over_90: Decimal
    invoices: int

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, bucket) for bucket in AGING_BUCKETS), ZERO)


def _aging_bucket(days_late: int) -> str:
    if days_late <= 0:
        return "current"
    if days_late <= 30:
        return "days_1_30"
    if days_late <= 60:
        return "days_31_60"
    if days_late <= 90:
        return "days_61_90"
    return "days_over_90"


def receivables_aging(*, as_of: date, partner: Partner | None = None) -> list[AgingRow]:
    """Open invoices' amounts due at `as_of`, per currency, in buckets of days past due."""
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    counts: dict[str, int] = defaultdict(int)
    open_invoices = _visible(
        Invoice.objects.filter(status=Invoice.Status.OPEN, amount_due__gt=0), partner
    )
    for currency, due_on, amount_due in open_invoices.values_list(
        "currency", "due_on", "amount_due"
    ):
        sums[currency][_aging_bucket((as_of - due_on).days)] += amount_due
        counts[currency] += 1
    return [
        AgingRow(
            currency=currency,
            **{bucket: sums[currency][bucket] for bucket in AGING_BUCKETS},
            invoices=counts[currency],
        )
        for currency in sorted(sums)
    ]


@dataclass(frozen=True)
class ReconciliationMismatch:
    check: str  # receivable | cash | customer_credit | deferred_revenue | ledger
    currency: str
    party: str  # "customer:42" for per-customer checks
    ledger: Decimal
    expected: Decimal
    detail: str = ""

    @property
    def difference(self) -> Decimal:
        return self.ledger - self.expected


@dataclass
class Reconciliation:
    mismatches: list[ReconciliationMismatch] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # check -> comparisons made

    @property
    def ok(self) -> bool:
        return not self.mismatches


def ledger_reconciliation() -> Reconciliation:
    """The ledger against billing's own records; every difference is listed.

    - receivable: per customer and currency, the ledger's accounts receivable equals what their
      open invoices still ask (amount due);
    - cash: per currency, cash equals payments received less refunds paid and funds held or
      lost in disputes;
    - customer_credit: per customer and currency, the ledger's customer credit equals their
      credit balance;
    - deferred_revenue: the deferred revenue equals what recognition schedules still owe;
    - ledger: the ledger's own check (cached balances, balanced entries).
    """
    result = Reconciliation()
    receivable = _per_party(
        Invoice.objects.filter(status=Invoice.Status.OPEN), "amount_due", "customer_id"
    )
    credit = _per_party(CustomerBalance.objects.all(), "amount", "customer_id")
    for check, code, expected in (
        ("receivable", AccountCode.ACCOUNTS_RECEIVABLE, receivable),
        ("customer_credit", AccountCode.CUSTOMER_CREDIT, credit),
    ):
        currencies = set(expected) | set(
            Account.objects.filter(code=code).values_list("currency", flat=True)
        )
        for currency in sorted(currencies):
            ledger = party_balances(code=code, currency=currency)
            wanted = expected.get(currency, {})
            for who in sorted(set(ledger) | set(wanted)):
                result.checked[check] = result.checked.get(check, 0) + 1
                booked, owed = ledger.get(who, ZERO), wanted.get(who, ZERO)
                if booked != owed:
                    result.mismatches.append(
                        ReconciliationMismatch(check, currency, who, booked, owed)
                    )
    cash = _cash_expected()
    currencies = set(cash) | set(
        Account.objects.filter(code=AccountCode.CASH).values_list("currency", flat=True)
    )
    for currency in sorted(currencies):
        result.checked["cash"] = result.checked.get("cash", 0) + 1
        booked = account_balance(code=AccountCode.CASH, currency=currency).balance
        if booked != cash.get(currency, ZERO):
            result.mismatches.append(
                ReconciliationMismatch("cash", currency, "", booked, cash.get(currency, ZERO))
            )
    for row in deferred_revenue_reconciliation():
        result.checked["deferred_revenue"] = result.checked.get("deferred_revenue", 0) + 1
        if row.difference:
            result.mismatches.append(
                ReconciliationMismatch(
                    "deferred_revenue", row.currency, "", row.ledger_deferred, row.scheduled
                )
            )
    self_check = ledger_check()
    result.checked["ledger"] = 1
    for problem in self_check.problems:
        result.mismatches.append(
            ReconciliationMismatch("ledger", "", "", ZERO, ZERO, detail=problem)
        )
    return result


def _per_party(rows: QuerySet, amount: str, customer: str) -> dict[str, dict[str, Decimal]]:
    sums: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for currency, customer_id, total in (
        rows.values("currency", customer)
        .annotate(total=Sum(amount))
        .values_list("currency", customer, "total")
    ):
        if total:
            sums[currency][party(customer_id)] = total
    return sums


def _cash_expected() -> dict[str, Decimal]:
    cash: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for currency, total in (
        Payment.objects.values("currency").annotate(t=Sum("amount")).values_list("currency", "t")
    ):
        cash[currency] += total
    for currency, total in (
        Refund.objects.filter(status=Refund.Status.SUCCEEDED)
        .values("currency")
        .annotate(t=Sum("amount"))
        .values_list("currency", "t")
    ):
        cash[currency] -= total
    for currency, total in (
        Dispute.objects.filter(status__in=[Dispute.Status.OPEN, Dispute.Status.LOST])
        .values("currency")
        .annotate(t=Sum("amount"))
        .values_list("currency", "t")
    ):
        cash[currency] -= total
    return dict(cash)
