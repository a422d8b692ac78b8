"""Invoices, credit notes and the customer credit balance.

Billing is the money engine: it turns line items into invoices, numbers them without gaps,
credits and (later) collects them. It knows nothing of lifecycle rules; `subscription_id` on a
line is an opaque reference set by the subscriptions app.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from catalog.models import Coupon, Meter, Plan, Price, TaxRate
from core.money import DECIMAL_PLACES, MAX_DIGITS
from customers.models import Customer


def _money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


CURRENCY_ISO = Q(currency__regex=r"^[A-Z]{3}$")


class DocumentSequence(models.Model):
    """A gapless numbering sequence (invoices per year, credit notes per year).

    The row is locked while a number is taken, in the same transaction that uses the number,
    so a rollback gives the number back and no gap can appear.
    """

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=32, help_text="For example the year: 2026.")
    prefix = models.CharField(max_length=32, help_text="For example INV-2026-.")
    next_number = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="document_sequence_unique"),
            models.CheckConstraint(
                condition=Q(next_number__gte=1), name="document_sequence_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} (next {self.prefix}{self.next_number:06d})"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    class BillingReason(models.TextChoices):
        SUBSCRIPTION_CREATE = "subscription_create", "Subscription created"
        SUBSCRIPTION_CYCLE = "subscription_cycle", "Renewal"
        SUBSCRIPTION_UPDATE = "subscription_update", "Subscription changed"
        SUBSCRIPTION_CANCEL = "subscription_cancel", "Subscription canceled"
        USAGE = "usage", "Usage"
        MANUAL = "manual", "One-off"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    billing_reason = models.CharField(max_length=24, choices=BillingReason.choices)
    sequence = models.ForeignKey(
        DocumentSequence, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sequence_number = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=64, null=True, blank=True, unique=True)
    subtotal = _money(default=Decimal("0"), help_text="Sum of line amounts before discounts.")
    discount_total = _money(default=Decimal("0"))
    tax_total = _money(default=Decimal("0"))
    total = _money(default=Decimal("0"), help_text="Sum of the line totals.")
    credit_applied = _money(default=Decimal("0"), help_text="Customer credit balance used.")
    credited_total = _money(
        default=Decimal("0"), help_text="Credit notes taken off the amount due."
    )
    amount_paid = _money(default=Decimal("0"))
    amount_due = _money(default=Decimal("0"))
    issued_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField()
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-id"]),
            models.Index(fields=["status", "due_on"]),
        ]
        constraints = [
            models.CheckConstraint(condition=CURRENCY_ISO, name="invoice_currency_iso"),
            models.UniqueConstraint(
                fields=["sequence", "sequence_number"], name="invoice_sequence_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(status="draft")
                | Q(number__isnull=False, sequence_number__isnull=False),
                name="invoice_finalized_has_number",
            ),
            models.CheckConstraint(
                condition=~Q(status="draft") | Q(number__isnull=True),
                name="invoice_draft_has_no_number",
            ),
            models.CheckConstraint(
                condition=Q(amount_due__gte=0), name="invoice_amount_due_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(credit_applied__gte=0), name="invoice_credit_applied_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0), name="invoice_amount_paid_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(credited_total__gte=0), name="invoice_credited_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft invoice #{self.pk}"


class InvoiceLine(models.Model):
    """One charge or credit. Signed amounts: credits are negative, charges positive.

    `amount` is quantity x unit amount (x days / period days when prorated), rounded once,
    half up, to the currency's minor unit. `total` = amount - discount + exclusive tax; an
    inclusive tax is inside `amount` and only reported in `tax_amount`.
    """

    class Kind(models.TextChoices):
        RECURRING = "recurring", "Recurring"
        FIXED_FEE = "fixed_fee", "One-time fee"
        PRORATION_CREDIT = "proration_credit", "Proration credit"
        PRORATION_CHARGE = "proration_charge", "Proration charge"
        USAGE = "usage", "Usage"
        ONE_OFF = "one_off", "One-off"
        ADJUSTMENT = "adjustment", "Adjustment"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=300)
    subscription_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    price = models.ForeignKey(
        Price, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Exclusive.")
    proration_days = models.PositiveIntegerField(null=True, blank=True)
    period_days = models.PositiveIntegerField(null=True, blank=True)
    quantity = _money(default=Decimal("1"))
    unit_amount = _money(default=Decimal("0"))
    amount = _money()
    coupon = models.ForeignKey(
        Coupon, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    discount_amount = _money(default=Decimal("0"))
    tax_rate = models.ForeignKey(
        TaxRate, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tax_percent = models.DecimalField(max_digits=7, decimal_places=4, default=Decimal("0"))
    tax_inclusive = models.BooleanField(default=False)
    tax_amount = _money(default=Decimal("0"))
    total = _money()

    class Meta:
        ordering = ["invoice", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_start__isnull=True, period_end__isnull=True)
                | Q(period_start__lt=F("period_end")),
                name="invoice_line_period_ordered",
            ),
            models.CheckConstraint(
                condition=~Q(kind="proration_credit") | Q(amount__lte=0),
                name="invoice_line_credit_not_positive",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["proration_credit", "adjustment"]) | Q(amount__gte=0),
                name="invoice_line_charge_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0, discount_amount__gte=0, discount_amount__lte=F("amount"))
                | Q(amount__lte=0, discount_amount__lte=0, discount_amount__gte=F("amount")),
                name="invoice_line_discount_within_amount",
            ),
            # The database itself refuses billing one service period of a subscription twice:
            # once for its recurring fee, once per meter for its usage.
            models.UniqueConstraint(
                fields=["subscription_id", "period_start"],
                condition=Q(kind="recurring"),
                name="invoice_line_period_billed_once",
            ),
            models.UniqueConstraint(
                fields=["subscription_id", "meter", "period_start"],
                condition=Q(kind="usage"),
                name="invoice_line_usage_billed_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.total}"


class CreditNote(models.Model):
    """Reduces an issued invoice; its value goes to the customer balance or off the amount due."""

    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        VOID = "void", "Void"

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate", "Duplicate"
        FRAUDULENT = "fraudulent", "Fraudulent"
        ORDER_CHANGE = "order_change", "Order change"
        PRODUCT_UNSATISFACTORY = "product_unsatisfactory", "Product unsatisfactory"
        OTHER = "other", "Other"

    class Outcome(models.TextChoices):
        CREDIT_BALANCE = "credit_balance", "Credited to the customer balance"
        REDUCE_AMOUNT_DUE = "reduce_amount_due", "Taken off the amount due"
        REFUND = "refund", "Refunded"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    currency = models.CharField(max_length=3)
    sequence = models.ForeignKey(DocumentSequence, on_delete=models.PROTECT, related_name="+")
    sequence_number = models.PositiveIntegerField()
    number = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ISSUED)
    reason = models.CharField(max_length=24, choices=Reason.choices, default=Reason.OTHER)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    subtotal = _money(help_text="Amount credited before tax.")
    tax_amount = _money(default=Decimal("0"))
    total = _money()
    memo = models.TextField(blank=True)
    issued_on = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=CURRENCY_ISO, name="credit_note_currency_iso"),
            models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_total_positive"),
            models.UniqueConstraint(
                fields=["sequence", "sequence_number"], name="credit_note_sequence_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(
        InvoiceLine,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_note_lines",
    )
    description = models.CharField(max_length=300)
    amount = _money(help_text="Credited amount before tax (positive).")
    tax_amount = _money(default=Decimal("0"))
    total = _money()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_line_positive")
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.total}"


class CustomerBalance(models.Model):
    """Credit the business owes a customer, per currency; kept current with every transaction."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="balances")
    currency = models.CharField(max_length=3)
    amount = _money(default=Decimal("0"))
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "currency"], name="customer_balance_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="customer_balance_not_negative"
            ),
            models.CheckConstraint(condition=CURRENCY_ISO, name="customer_balance_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.amount} {self.currency}"


class CustomerBalanceTransaction(models.Model):
    """One movement of a customer's credit balance (append-only): + credit, - use."""

    class Kind(models.TextChoices):
        PRORATION_CREDIT = "proration_credit", "Unused time credited"
        CREDIT_NOTE = "credit_note", "Credit note"
        APPLIED_TO_INVOICE = "applied_to_invoice", "Applied to an invoice"
        ADJUSTMENT = "adjustment", "Manual adjustment"
        INVOICE_VOIDED = "invoice_voided", "Returned from a voided invoice"

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="balance_transactions"
    )
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    amount = _money(help_text="Positive adds credit, negative uses it.")
    balance_after = _money()
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    memo = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="balance_transaction_not_zero"),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="balance_transaction_after_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"
