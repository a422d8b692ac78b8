"""Shapes of payment methods, payment attempts, payments, refunds and billing reports.

A card number comes in only on saving a simulated card (write-only, never rendered back);
amounts are decimal strings in the object's currency.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AmountField
from billing.models import Payment, PaymentAttempt, PaymentMethod, Refund

OFFLINE_METHODS = [
    (value, label) for value, label in Payment.Method.choices if value != Payment.Method.CARD
]


class PaymentMethodSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    reference = serializers.CharField(
        read_only=True, help_text="The gateway's token or payment method id (pm_...)."
    )

    class Meta:
        model = PaymentMethod
        fields = [
            "id",
            "customer",
            "gateway",
            "reference",
            "brand",
            "last4",
            "exp_month",
            "exp_year",
            "is_default",
            "status",
            "created_at",
            "detached_at",
        ]
        read_only_fields = fields


class PaymentMethodListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    include_detached = serializers.BooleanField(required=False, default=False)


class PaymentMethodCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(min_value=1, help_text="Customer id.")
    card_number = serializers.CharField(
        required=False,
        write_only=True,
        max_length=32,
        help_text="Simulated gateway: a test card number (4242424242424242 succeeds...). "
        "Tokenized at once; never stored.",
    )
    exp_month = serializers.IntegerField(required=False, min_value=1, max_value=12)
    exp_year = serializers.IntegerField(required=False, min_value=0, max_value=9999)
    payment_method = serializers.CharField(
        required=False, max_length=255, help_text="Stripe: the pm_... id Stripe.js created."
    )
    make_default = serializers.BooleanField(
        required=False, default=True, help_text="Become the customer's default (default true)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("card_number")) == bool(attrs.get("payment_method")):
            raise serializers.ValidationError(
                {"card_number": "Give either a card number (simulated) or a payment_method id."}
            )
        return attrs


class PaymentAttemptSerializer(serializers.ModelSerializer):
    invoice = serializers.IntegerField(source="invoice_id", read_only=True)
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    payment_method = serializers.IntegerField(source="payment_method_id", read_only=True)
    amount = AmountField(read_only=True)
    payment = serializers.SerializerMethodField(help_text="The payment a success made.")

    class Meta:
        model = PaymentAttempt
        fields = [
            "id",
            "invoice",
            "customer",
            "attempt_number",
            "idempotency_key",
            "trigger",
            "status",
            "amount",
            "currency",
            "payment_method",
            "gateway",
            "gateway_reference",
            "decline_code",
            "decline_kind",
            "error_message",
            "payment",
            "created_at",
            "resolved_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_payment(self, attempt: PaymentAttempt) -> int | None:
        payment = Payment.objects.filter(attempt=attempt).values_list("pk", flat=True).first()
        return payment


class PaymentAttemptListQuerySerializer(serializers.Serializer):
    invoice = serializers.IntegerField(required=False, min_value=1, help_text="Invoice id.")
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    status = serializers.ChoiceField(choices=PaymentAttempt.Status.choices, required=False)


class InvoicePaySerializer(serializers.Serializer):
    payment_method = serializers.IntegerField(
        required=False, min_value=1, help_text="A saved method; the customer's default if absent."
    )


class PaymentSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    invoice = serializers.IntegerField(source="invoice_id", read_only=True, allow_null=True)
    attempt = serializers.IntegerField(source="attempt_id", read_only=True, allow_null=True)
    amount = AmountField(read_only=True)
    amount_refunded = AmountField(read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "customer",
            "invoice",
            "amount",
            "amount_refunded",
            "currency",
            "method",
            "gateway",
            "gateway_reference",
            "reference",
            "attempt",
            "status",
            "received_on",
            "created_at",
        ]
        read_only_fields = fields


class PaymentListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    invoice = serializers.IntegerField(required=False, min_value=1, help_text="Invoice id.")
    status = serializers.ChoiceField(choices=Payment.Status.choices, required=False)


class OfflinePaymentSerializer(serializers.Serializer):
    invoice = serializers.IntegerField(min_value=1, help_text="Invoice id.")
    amount = AmountField(help_text="Part or all of what is due.")
    method = serializers.ChoiceField(choices=OFFLINE_METHODS)
    reference = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    received_on = serializers.DateField(help_text="When the money arrived (not in the future).")


class RefundSerializer(serializers.ModelSerializer):
    payment = serializers.IntegerField(source="payment_id", read_only=True)
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    credit_note = serializers.IntegerField(source="credit_note_id", read_only=True, allow_null=True)
    amount = AmountField(read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "customer",
            "amount",
            "currency",
            "reason",
            "memo",
            "credit_note",
            "origin",
            "status",
            "gateway_reference",
            "error_message",
            "created_at",
            "resolved_at",
        ]
        read_only_fields = fields


class RefundListQuerySerializer(serializers.Serializer):
    payment = serializers.IntegerField(required=False, min_value=1, help_text="Payment id.")
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")


class RefundCreateSerializer(serializers.Serializer):
    payment = serializers.IntegerField(min_value=1, help_text="Payment id.")
    amount = AmountField(required=False, help_text="All that is left of the payment if absent.")
    reason = serializers.ChoiceField(
        choices=Refund.Reason.choices,
        required=False,
        default=Refund.Reason.REQUESTED_BY_CUSTOMER,
    )
    memo = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


# --- reports ------------------------------------------------------------------------------------


class AgingQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(required=False, help_text="Defaults to today.")


class AgingRowSerializer(serializers.Serializer):
    currency = serializers.CharField()
    current = AmountField(help_text="Not yet due.")
    days_1_30 = AmountField()
    days_31_60 = AmountField()
    days_61_90 = AmountField()
    days_over_90 = AmountField()
    total = AmountField()
    invoices = serializers.IntegerField()


class AgingSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    rows = AgingRowSerializer(many=True)


class ReconciliationMismatchSerializer(serializers.Serializer):
    check = serializers.CharField(
        help_text="receivable, cash, customer_credit, deferred_revenue or ledger."
    )
    currency = serializers.CharField()
    party = serializers.CharField(help_text='"customer:{id}" for per-customer checks.')
    ledger = serializers.DecimalField(max_digits=20, decimal_places=4)
    expected = serializers.DecimalField(max_digits=20, decimal_places=4)
    difference = serializers.DecimalField(max_digits=20, decimal_places=4)
    detail = serializers.CharField()


class ReconciliationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.DictField(
        child=serializers.IntegerField(), help_text="Comparisons made per check."
    )
    mismatches = ReconciliationMismatchSerializer(many=True)


class StripeWebhookResultSerializer(serializers.Serializer):
    id = serializers.CharField(source="event_id")
    type = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField()
