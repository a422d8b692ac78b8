"""Shapes of invoices, credit notes and customer balances in the API.

Amounts are decimal strings in the document's currency (`api.fields.AmountField`). Input
serializers check types; the rules (decimals of the currency, what may be credited, the
balance never going negative) are the services', so the API answers with their error codes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AmountField
from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalanceTransaction,
    Invoice,
    InvoiceLine,
)
from catalog.models import Coupon
from core.errors import ValidationError
from core.money import parse_decimal


@extend_schema_field({"type": "string", "format": "decimal", "example": "-5.00"})
class SignedAmountField(AmountField):
    """An amount that may be negative (a balance adjustment takes credit away)."""

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_decimal(data)
        except ValidationError:
            self.fail("invalid")


@extend_schema_field({"type": "string", "format": "decimal", "example": "3"})
class QuantityField(serializers.Field):
    """A quantity as a decimal string or an integer (never a float)."""

    default_error_messages = {"invalid": 'Send quantities as decimal strings, for example "2".'}

    def to_representation(self, value: Decimal) -> str:
        return f"{value.normalize():f}"

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_decimal(data, param="quantity")
        except ValidationError:
            self.fail("invalid")


# --- invoices -----------------------------------------------------------------------------------


class InvoiceLineSerializer(serializers.ModelSerializer):
    quantity = QuantityField(read_only=True)
    unit_amount = AmountField(
        currency_source="invoice.currency",
        exact=False,
        read_only=True,
        help_text="Per unit and full period; may carry more decimals than the currency.",
    )
    amount = AmountField(
        currency_source="invoice.currency",
        read_only=True,
        help_text="Quantity x unit amount (prorated), rounded once; negative for credits.",
    )
    discount_amount = AmountField(currency_source="invoice.currency", read_only=True)
    tax_amount = AmountField(
        currency_source="invoice.currency",
        read_only=True,
        help_text="Inside `amount` when `tax_inclusive`, else added to it.",
    )
    total = AmountField(
        currency_source="invoice.currency",
        read_only=True,
        help_text="amount - discount_amount (+ tax_amount when exclusive).",
    )
    tax_percent = serializers.DecimalField(
        max_digits=7, decimal_places=4, read_only=True, help_text="0 when untaxed."
    )
    coupon: serializers.SlugRelatedField[Coupon] = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True, help_text="The coupon's code."
    )
    period_end = serializers.DateField(
        read_only=True, allow_null=True, help_text="Exclusive: the day after the last one."
    )

    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "position",
            "kind",
            "description",
            "subscription_id",
            "plan_id",
            "price_id",
            "meter_id",
            "period_start",
            "period_end",
            "proration_days",
            "period_days",
            "quantity",
            "unit_amount",
            "amount",
            "coupon",
            "discount_amount",
            "tax_percent",
            "tax_inclusive",
            "tax_amount",
            "total",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    number = serializers.CharField(
        read_only=True, allow_null=True, help_text="Assigned at finalization; null on a draft."
    )
    subtotal = AmountField(read_only=True, help_text="Sum of the line amounts.")
    discount_total = AmountField(read_only=True)
    tax_total = AmountField(read_only=True)
    total = AmountField(read_only=True, help_text="Sum of the line totals.")
    credit_applied = AmountField(read_only=True, help_text="Customer credit balance used.")
    credited_total = AmountField(read_only=True, help_text="Credit notes taken off the amount due.")
    amount_paid = AmountField(read_only=True)
    amount_due = AmountField(read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer",
            "currency",
            "status",
            "billing_reason",
            "subtotal",
            "discount_total",
            "tax_total",
            "total",
            "credit_applied",
            "credited_total",
            "amount_paid",
            "amount_due",
            "issued_on",
            "due_on",
            "memo",
            "created_at",
            "finalized_at",
            "paid_at",
            "voided_at",
            "marked_uncollectible_at",
            "lines",
        ]
        read_only_fields = fields


class InvoiceListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    subscription = serializers.IntegerField(
        required=False, min_value=1, help_text="Invoices with a line of this subscription."
    )
    status = serializers.ChoiceField(choices=Invoice.Status.choices, required=False)
    number = serializers.CharField(required=False, help_text="Exact invoice number.")


class OneOffItemSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=300)
    quantity = QuantityField(required=False, default=Decimal(1))
    unit_amount = AmountField(help_text="With at most the decimals of the invoice currency.")
    tax = serializers.BooleanField(
        required=False, default=True, help_text="Tax at the customer's rate (default true)."
    )


class InvoiceCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(min_value=1, help_text="Customer id.")
    currency = serializers.CharField(
        required=False, help_text="ISO 4217; defaults to the customer's billing currency."
    )
    items = OneOffItemSerializer(many=True, allow_empty=False)
    finalize = serializers.BooleanField(
        required=False, default=True, help_text="Finalize at once (default) or keep a draft."
    )
    memo = serializers.CharField(required=False, allow_blank=True, default="")


# --- credit notes -------------------------------------------------------------------------------


class CreditNoteLineSerializer(serializers.ModelSerializer):
    amount = AmountField(
        currency_source="credit_note.currency",
        read_only=True,
        help_text="Credited before exclusive tax (like the invoice line's amount).",
    )
    tax_amount = AmountField(currency_source="credit_note.currency", read_only=True)
    total = AmountField(currency_source="credit_note.currency", read_only=True)

    class Meta:
        model = CreditNoteLine
        fields = ["id", "invoice_line", "description", "amount", "tax_amount", "total"]
        read_only_fields = fields


class CreditNoteSerializer(serializers.ModelSerializer):
    invoice = serializers.IntegerField(source="invoice_id", read_only=True)
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    subtotal = AmountField(read_only=True)
    tax_amount = AmountField(read_only=True)
    total = AmountField(read_only=True)
    lines = CreditNoteLineSerializer(many=True, read_only=True)

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "number",
            "invoice",
            "customer",
            "currency",
            "status",
            "reason",
            "outcome",
            "subtotal",
            "tax_amount",
            "total",
            "memo",
            "issued_on",
            "created_at",
            "lines",
        ]
        read_only_fields = fields


class CreditNoteListQuerySerializer(serializers.Serializer):
    invoice = serializers.IntegerField(required=False, min_value=1, help_text="Invoice id.")
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")


class CreditNoteLineInputSerializer(serializers.Serializer):
    invoice_line = serializers.IntegerField(min_value=1, help_text="A line of the invoice.")
    amount = AmountField(help_text="Pre-tax amount to credit on that line.")


class CreditNoteCreateSerializer(serializers.Serializer):
    invoice = serializers.IntegerField(min_value=1, help_text="Invoice id.")
    outcome = serializers.ChoiceField(
        choices=CreditNote.Outcome.choices,
        help_text="`credit_balance`, `reduce_amount_due` (open invoices) or `refund` (the "
        "invoice's payments are refunded).",
    )
    reason = serializers.ChoiceField(
        choices=CreditNote.Reason.choices, required=False, default=CreditNote.Reason.OTHER
    )
    memo = serializers.CharField(required=False, allow_blank=True, default="")
    lines = CreditNoteLineInputSerializer(
        many=True,
        required=False,
        allow_empty=False,
        help_text="Credit these lines by these pre-tax amounts.",
    )
    amount = AmountField(
        required=False,
        help_text="Or credit this amount (tax included), spread over the lines in proportion "
        "to their totals. Neither lines nor amount: the whole invoice.",
    )


# --- customer balance ---------------------------------------------------------------------------


class BalanceTransactionSerializer(serializers.ModelSerializer):
    amount = SignedAmountField(read_only=True, help_text="Positive adds credit, negative uses it.")
    balance_after = AmountField(read_only=True)
    invoice = serializers.IntegerField(source="invoice_id", read_only=True, allow_null=True)
    credit_note = serializers.IntegerField(source="credit_note_id", read_only=True, allow_null=True)

    class Meta:
        model = CustomerBalanceTransaction
        fields = [
            "id",
            "kind",
            "currency",
            "amount",
            "balance_after",
            "invoice",
            "credit_note",
            "memo",
            "created_at",
        ]
        read_only_fields = fields


class CustomerBalanceSerializer(serializers.Serializer):
    customer = serializers.IntegerField(read_only=True)
    currency = serializers.CharField(read_only=True, allow_null=True)
    balance = AmountField(
        read_only=True, help_text="Credit owed to the customer, applied to their next invoices."
    )
    transactions = BalanceTransactionSerializer(
        many=True, read_only=True, help_text="The most recent movements, newest first."
    )


class CustomerBalanceAdjustSerializer(serializers.Serializer):
    amount = SignedAmountField(help_text="Positive adds credit, negative takes it away.")
    currency = serializers.CharField(
        required=False, help_text="ISO 4217; defaults to the customer's billing currency."
    )
    memo = serializers.CharField(max_length=300, help_text="Why (kept with the transaction).")
