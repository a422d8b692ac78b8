"""Invoices, credit notes and the customer credit balance.

Billing is the money engine: it turns line items into invoices, numbers them without gaps,
credits and (later) collects them. It knows nothing of lifecycle rules; `subscription_id` on a
line is an opaque reference set by the subscriptions app.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

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

    # Indexed by (customer, -id) below: no index of its own.
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="invoices", db_index=False
    )
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    billing_reason = models.CharField(max_length=24, choices=BillingReason.choices)
    sequence = models.ForeignKey(
        DocumentSequence, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sequence_number = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 - none while draft
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
            models.UniqueConstraint(fields=["number"], name="invoice_number_unique"),
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


# --- payments -----------------------------------------------------------------------------------


class Gateway(models.TextChoices):
    SIMULATED = "simulated", "Simulated (test cards)"
    STRIPE = "stripe", "Stripe"


class GatewayCustomer(models.Model):
    """The customer's record at a gateway (a Stripe customer id, for example)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="gateway_customers"
    )
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    reference = models.CharField(max_length=255)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "gateway"], name="gateway_customer_unique"),
            models.UniqueConstraint(
                fields=["gateway", "reference"], name="gateway_customer_reference_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.reference}"


class PaymentMethod(models.Model):
    """A saved card: the gateway's token and what may be shown of it. Never the card number."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DETACHED = "detached", "Detached"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_methods")
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    reference = models.CharField(
        max_length=255, help_text="The gateway's token or payment method id (pm_...)."
    )
    brand = models.CharField(max_length=32)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    is_default = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    detached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(is_default=True),
                name="payment_method_one_default_per_customer",
            ),
            models.UniqueConstraint(
                fields=["gateway", "reference"], name="payment_method_reference_unique"
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(status="active"),
                name="payment_method_default_is_active",
            ),
            models.CheckConstraint(
                condition=Q(last4__regex=r"^[0-9]{4}$"), name="payment_method_last4_digits"
            ),
            models.CheckConstraint(
                condition=Q(exp_month__gte=1, exp_month__lte=12),
                name="payment_method_exp_month_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4} ({self.exp_month:02d}/{self.exp_year})"


class PaymentAttempt(models.Model):
    """One try at charging an invoice through a gateway.

    The idempotency key ("invoice-{invoice id}-attempt-{n}") is sent to the gateway, so a
    retried call can never charge twice; an attempt whose outcome is unknown is retried with
    the same key. At most one attempt per invoice is pending or unknown at any time.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        DECLINED = "declined", "Declined"
        UNKNOWN = "unknown", "Outcome unknown"

    class DeclineKind(models.TextChoices):
        SOFT = "soft", "Soft (retry later)"
        HARD = "hard", "Hard (wait for a new payment method)"

    class Trigger(models.TextChoices):
        AUTOCHARGE = "autocharge", "Autocharge"
        PAY_NOW = "pay_now", "Pay now"
        RETRY = "retry", "Retry"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payment_attempts")
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="payment_attempts"
    )
    attempt_number = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=100)
    trigger = models.CharField(max_length=12, choices=Trigger.choices)
    amount = _money()
    currency = models.CharField(max_length=3)
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="attempts"
    )
    gateway = models.CharField(max_length=16, choices=Gateway.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decline_code = models.CharField(max_length=64, blank=True)
    decline_kind = models.CharField(max_length=4, choices=DeclineKind.choices, blank=True)
    gateway_reference = models.CharField(max_length=255, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(
        default=timezone.now,
        help_text="Wall clock: when a worker last took it to the gateway. Still pending long "
        "after (PAYMENT_ATTEMPT_STALE_MINUTES), its worker died: the sweeper settles it.",
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "attempt_number"], name="payment_attempt_number_unique"
            ),
            models.UniqueConstraint(fields=["idempotency_key"], name="payment_attempt_key_unique"),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(status__in=["pending", "unknown"]),
                name="payment_attempt_one_open_per_invoice",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payment_attempt_amount_positive"
            ),
            models.CheckConstraint(
                condition=(Q(status="declined") & ~Q(decline_kind=""))
                | (~Q(status="declined") & Q(decline_kind="")),
                name="payment_attempt_declines_are_classified",
            ),
            models.CheckConstraint(condition=CURRENCY_ISO, name="payment_attempt_currency_iso"),
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class Payment(models.Model):
    """Money received from a customer: through a gateway, or recorded by staff (offline)."""

    class Method(models.TextChoices):
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CHEQUE = "cheque", "Cheque"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        DISPUTED = "disputed", "Disputed"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="payments"
    )
    amount = _money()
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=16, choices=Method.choices)
    gateway = models.CharField(max_length=16, choices=Gateway.choices, blank=True)
    gateway_reference = models.CharField(max_length=255, blank=True)
    reference = models.CharField(
        max_length=200, blank=True, help_text="Bank transfer or cheque reference."
    )
    attempt = models.OneToOneField(
        PaymentAttempt, on_delete=models.PROTECT, null=True, blank=True, related_name="payment"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUCCEEDED)
    amount_refunded = _money(default=Decimal("0"))
    received_on = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0, amount_refunded__lte=F("amount")),
                name="payment_refunded_within_amount",
            ),
            models.CheckConstraint(condition=CURRENCY_ISO, name="payment_currency_iso"),
            models.UniqueConstraint(
                fields=["gateway", "gateway_reference"],
                condition=~Q(gateway_reference=""),
                name="payment_gateway_reference_unique",
            ),
            models.CheckConstraint(
                condition=Q(method="card") | Q(gateway=""),
                name="payment_offline_has_no_gateway",
            ),
        ]

    def __str__(self) -> str:
        return f"payment #{self.pk}: {self.amount} {self.currency}"

    @property
    def refundable(self) -> Decimal:
        return self.amount - self.amount_refunded


class Refund(models.Model):
    """Money paid back against a payment, in full or in part.

    `amount_refunded` on the payment counts every refund that is not failed (a pending one
    is committed to), so two refunds can never together exceed the payment.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Outcome unknown"

    class Reason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by the customer"
        DUPLICATE = "duplicate", "Duplicate"
        FRAUDULENT = "fraudulent", "Fraudulent"
        CREDIT_NOTE = "credit_note", "Credit note"
        OTHER = "other", "Other"

    class Origin(models.TextChoices):
        PLATFORM = "platform", "Made here"
        GATEWAY = "gateway", "Made at the gateway (dashboard)"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="refunds")
    amount = _money()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=24, choices=Reason.choices, default=Reason.OTHER)
    memo = models.CharField(max_length=300, blank=True)
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds"
    )
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.PLATFORM)
    idempotency_key = models.CharField(max_length=100, unique=True)
    gateway_reference = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=CURRENCY_ISO, name="refund_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"refund #{self.pk}: {self.amount} {self.currency}"


class RefundLine(models.Model):
    """The share of a refund taken back from one invoice line (the ledger books it per line)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, related_name="refund_lines"
    )
    amount = _money(help_text="Refunded before exclusive tax (like the invoice line's amount).")
    tax_amount = _money(default=Decimal("0"))
    total = _money()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="refund_line_positive")
        ]

    def __str__(self) -> str:
        return f"{self.invoice_line_id}: {self.total}"


class Dispute(models.Model):
    """A chargeback opened by the cardholder's bank against a payment."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="disputes")
    gateway_reference = models.CharField(max_length=255, unique=True)
    amount = _money()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="dispute_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.gateway_reference}"


class StripeEvent(models.Model):
    """A Stripe webhook event, stored raw before anything else is done with it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


# --- the simulated gateway's own state ----------------------------------------------------------


class SimulatedCard(models.Model):
    """A card saved at the simulated gateway: its token and how it behaves, never its number."""

    token = models.CharField(max_length=64, unique=True)
    customer_reference = models.CharField(max_length=64)
    behavior = models.CharField(max_length=32)
    brand = models.CharField(max_length=32)
    last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.token


class SimulatedCharge(models.Model):
    """A charge as the simulated gateway keeps it, keyed like a real gateway by the caller's
    idempotency key: the same key never charges twice."""

    idempotency_key = models.CharField(max_length=100)
    reference = models.CharField(max_length=64)
    token = models.CharField(max_length=64)
    amount = _money()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10)  # succeeded | declined
    decline_code = models.CharField(max_length=64, blank=True)
    amount_refunded = _money(default=Decimal("0"))
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="simulated_charge_key_unique"),
            models.UniqueConstraint(fields=["reference"], name="simulated_charge_reference_unique"),
        ]

    def __str__(self) -> str:
        return self.reference


class SimulatedRefund(models.Model):
    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    charge = models.ForeignKey(SimulatedCharge, on_delete=models.PROTECT, related_name="refunds")
    amount = _money()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.reference
