"""Shapes of usage events, usage summaries and entitlements in the API.

Input serializers check types only; the rules (event ids, property values, periods) are the
services', so the API answers with their error codes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from api.fields import AmountField
from catalog.models import Meter, PlanMeter
from subscriptions.models import UsageEvent


@extend_schema_field({"type": "string", "format": "decimal", "example": "1500"})
class QuantityField(serializers.Field):
    """A quantity as a plain decimal string without trailing zeros ("1500", "2.5")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Decimal) -> str:
        text = f"{Decimal(value):f}"
        return text.rstrip("0").rstrip(".") if "." in text else text


@extend_schema_field(OpenApiTypes.OBJECT)
class PropertiesField(serializers.JSONField):
    """The event's properties: a JSON object (checked by the service)."""


class UsageEventSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    subscription = serializers.IntegerField(source="subscription_id", read_only=True)
    meter = serializers.CharField(source="meter.code", read_only=True, help_text="Meter code.")
    properties = PropertiesField(read_only=True)

    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "event_id",
            "customer",
            "customer_external_id",
            "subscription",
            "meter",
            "occurred_at",
            "properties",
            "created_at",
        ]
        read_only_fields = fields


class UsageEventCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(
        required=False, help_text="Customer id; or give `customer_external_id`."
    )
    customer_external_id = serializers.CharField(
        required=False, help_text="Your own id for the customer; or give `customer`."
    )
    meter = serializers.CharField(help_text="Meter code.")
    event_id = serializers.CharField(
        allow_blank=True,
        help_text=(
            "Your id for this event, unique per customer: sending it again records nothing "
            "new and answers 200 with the stored event."
        ),
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        help_text="When the usage happened (ISO 8601); now if omitted. At most 5 minutes ahead.",
    )
    properties = PropertiesField(
        required=False,
        help_text=(
            "A JSON object. The property a meter aggregates is a number for sum and max meters "
            '(an integer or a decimal string such as "12.5", never a JSON float), a string or '
            "an integer for unique-count meters."
        ),
    )
    subscription = serializers.IntegerField(
        required=False,
        help_text="The subscription to charge; by default the customer's one that meters it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("customer", "customer_external_id") if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"customer": "Give either `customer` (id) or `customer_external_id`."},
                code="customer_required",
            )
        return attrs


class UsageEventListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, help_text="Customer id.")
    customer_external_id = serializers.CharField(required=False)
    meter = serializers.CharField(required=False, help_text="Meter code.")
    subscription = serializers.IntegerField(required=False, help_text="Subscription id.")
    occurred_after = serializers.DateTimeField(
        required=False, help_text="Occurred at or after this time (inclusive)."
    )
    occurred_before = serializers.DateTimeField(
        required=False, help_text="Occurred before this time (exclusive)."
    )


class UsageSummaryQuerySerializer(serializers.Serializer):
    subscription = serializers.IntegerField(help_text="Subscription id.")
    period_start = serializers.DateField(
        required=False, help_text="First day (inclusive); with `period_end`."
    )
    period_end = serializers.DateField(
        required=False,
        help_text="End (exclusive). Both empty: the subscription's current period.",
    )


class MeterUsageSerializer(serializers.Serializer):
    meter = serializers.CharField(source="meter.code", read_only=True, help_text="Meter code.")
    name = serializers.CharField(source="meter.name", read_only=True)
    unit_label = serializers.CharField(source="meter.unit_label", read_only=True)
    aggregation = serializers.ChoiceField(
        source="meter.aggregation", choices=Meter.Aggregation.choices, read_only=True
    )
    pricing = serializers.ChoiceField(
        source="plan_meter.pricing", choices=PlanMeter.Pricing.choices, read_only=True
    )
    quantity = QuantityField(help_text="The meter's total over the period so far.")
    amount_unrounded = AmountField(
        source="amount",
        exact=False,
        read_only=True,
        allow_null=True,
        help_text="The exact price of the quantity; null without a price in this currency.",
    )
    amount = AmountField(
        source="amount_rounded",
        read_only=True,
        allow_null=True,
        help_text="Rounded to the currency, as the invoice line would be now.",
    )


@extend_schema_serializer(many=False)
class UsageSummarySerializer(serializers.Serializer):
    subscription = serializers.IntegerField(source="subscription.pk", read_only=True)
    customer = serializers.IntegerField(source="subscription.customer_id", read_only=True)
    currency = serializers.CharField(read_only=True)
    period_start = serializers.DateField(read_only=True)
    period_end = serializers.DateField(read_only=True, help_text="Exclusive.")
    meters = MeterUsageSerializer(many=True, read_only=True)
    total = AmountField(read_only=True, help_text="Sum of the rounded amounts.")


class EntitlementSourceSerializer(serializers.Serializer):
    subscription = serializers.IntegerField(source="subscription_id", read_only=True)
    plan = serializers.CharField(source="plan_code", read_only=True, help_text="Plan code.")


class EntitlementSerializer(serializers.Serializer):
    feature = serializers.CharField(source="feature_code", read_only=True, help_text="Code.")
    name = serializers.CharField(source="feature_name", read_only=True)
    sources = EntitlementSourceSerializer(
        many=True, read_only=True, help_text="The subscriptions that grant it."
    )


@extend_schema_serializer(many=False)
class CustomerEntitlementsSerializer(serializers.Serializer):
    customer = serializers.IntegerField(read_only=True)
    on = serializers.DateField(read_only=True, help_text="The day they hold for (today).")
    entitlements = EntitlementSerializer(many=True, read_only=True)
