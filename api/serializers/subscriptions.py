"""Shapes of subscriptions, their timeline and their previews in the API.

Input serializers check types only; the rules (quantities, currencies, coupons, policies,
pause lengths) are the lifecycle services', so the API answers with their error codes.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AmountField
from api.serializers.billing import InvoiceLineSerializer, InvoiceSerializer
from catalog.models import Coupon, Plan, PriceList, PromotionCode
from subscriptions.models import (
    ScheduledChange,
    Subscription,
    SubscriptionDiscount,
    SubscriptionEvent,
)

POLICY_CHOICES = [("immediate", "immediate"), ("end_of_term", "end_of_term")]
PAUSE_WHEN_CHOICES = [("now", "now"), ("period_end", "period_end")]


@extend_schema_field({"type": "string", "example": "gold-monthly"})
class PlanReferenceField(serializers.Field):
    """A plan by its code or its id."""

    def to_representation(self, value: Any) -> str:
        return str(value)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int) or not str(data).strip():
            raise serializers.ValidationError("Give a plan code or id.", code="invalid_plan")
        return str(data).strip()


@extend_schema_field(OpenApiTypes.OBJECT)
class TimelineDataField(serializers.JSONField):
    """What the change was: before/after values and the details of the event."""


class DiscountSerializer(serializers.ModelSerializer):
    coupon: serializers.SlugRelatedField[Coupon] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    promotion_code: serializers.SlugRelatedField[PromotionCode] = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )
    ends_on = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="Periods starting from this day are not discounted; null: forever.",
    )

    class Meta:
        model = SubscriptionDiscount
        fields = ["coupon", "promotion_code", "starts_on", "ends_on"]
        read_only_fields = fields


class ScheduledChangeSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="change_plan, change_quantity or pause.")
    status = serializers.CharField(read_only=True, help_text="pending, applied or canceled.")
    plan: serializers.SlugRelatedField[Plan] = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )

    class Meta:
        model = ScheduledChange
        fields = [
            "id",
            "kind",
            "status",
            "effective_on",
            "plan",
            "quantity",
            "pause_resumes_on",
            "pause_cycles",
            "created_at",
        ]
        read_only_fields = fields


class SubscriptionSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    plan: serializers.SlugRelatedField[Plan] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    phase = serializers.CharField(
        source="phase.kind", read_only=True, help_text="trial, discount, fixed_term or evergreen."
    )
    price_list: serializers.SlugRelatedField[PriceList] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    parent = serializers.IntegerField(  # type: ignore[assignment]  # the API's name for it
        source="parent_id", read_only=True, allow_null=True, help_text="The base of an add-on."
    )
    group = serializers.IntegerField(
        source="group_id", read_only=True, allow_null=True, help_text="The bundle's group."
    )
    previous = serializers.IntegerField(
        source="previous_id",
        read_only=True,
        allow_null=True,
        help_text="The ended subscription this one reactivates.",
    )
    unit_amount = AmountField(
        read_only=True,
        exact=False,
        allow_null=True,
        help_text="A bundle share replacing the catalog price; null: the catalog price.",
    )
    billed_through = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="Recurring fees are invoiced for every day before this one.",
    )
    current_period_end = serializers.DateField(
        read_only=True, allow_null=True, help_text="Exclusive."
    )
    discounts = DiscountSerializer(many=True, read_only=True)
    pending_changes = serializers.SerializerMethodField()
    metadata = TimelineDataField(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "customer",
            "plan",
            "phase",
            "status",
            "quantity",
            "currency",
            "price_list",
            "unit_amount",
            "start_on",
            "phase_started_on",
            "phase_ends_on",
            "billing_anchor",
            "billing_day",
            "current_period_start",
            "current_period_end",
            "billed_through",
            "usage_billed_through",
            "next_transition_on",
            "cancel_at_period_end",
            "cancel_requested_at",
            "canceled_at",
            "ended_on",
            "cancel_reason",
            "paused_on",
            "pause_resumes_on",
            "parent",
            "group",
            "previous",
            "discounts",
            "pending_changes",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ScheduledChangeSerializer(many=True))
    def get_pending_changes(self, subscription: Subscription) -> list[dict[str, Any]]:
        pending = subscription.scheduled_changes.filter(
            status=ScheduledChange.Status.PENDING
        ).order_by("effective_on", "id")
        return list(ScheduledChangeSerializer(pending, many=True).data)


class SubscriptionResultSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    invoice = InvoiceSerializer(allow_null=True, help_text="The invoice issued now, if any.")


class BundleResultSerializer(serializers.Serializer):
    group = serializers.IntegerField()
    subscriptions = SubscriptionSerializer(many=True)
    invoice = InvoiceSerializer(allow_null=True)


class SubscriptionEventSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(
        read_only=True,
        help_text=f"One of: {', '.join(SubscriptionEvent.Kind.values)}.",
    )
    data = TimelineDataField(read_only=True)  # type: ignore[assignment]  # the event's field

    class Meta:
        model = SubscriptionEvent
        fields = ["id", "kind", "occurred_at", "effective_on", "actor_type", "actor_label", "data"]
        read_only_fields = fields


class InvoicePreviewSerializer(serializers.Serializer):
    """An invoice as it would be issued now: nothing is saved, so it has no id nor number."""

    currency = serializers.CharField()
    billing_reason = serializers.CharField()
    subtotal = AmountField()
    discount_total = AmountField()
    tax_total = AmountField()
    total = AmountField()
    starting_balance = AmountField(help_text="The customer's credit balance now.")
    credit_applied = AmountField(help_text="Credit balance finalizing it now would use.")
    amount_due = AmountField()
    lines = InvoiceLineSerializer(many=True)


class ChangePreviewSerializer(serializers.Serializer):
    preview = serializers.BooleanField(help_text="Always true: nothing was changed.")
    policy = serializers.ChoiceField(choices=POLICY_CHOICES)
    effective_on = serializers.DateField()
    invoice = InvoicePreviewSerializer(
        allow_null=True, help_text="The invoice the change would issue now; null: none."
    )


class UpcomingInvoiceSerializer(serializers.Serializer):
    billing_date = serializers.DateField(allow_null=True, help_text="When it will be issued.")
    invoice = InvoicePreviewSerializer(
        allow_null=True, help_text="Null when nothing more will be billed."
    )


# --- input ------------------------------------------------------------------------------------


class SubscriptionCreateSerializer(serializers.Serializer):
    customer = serializers.IntegerField(min_value=1, help_text="Customer id.")
    plan = PlanReferenceField(help_text="Plan code or id.")
    quantity = serializers.IntegerField(required=False, default=1)
    trial = serializers.BooleanField(
        required=False, default=True, help_text="Start with the plan's trial (if it has one)."
    )
    start_on = serializers.DateField(required=False, help_text="Today when omitted.")
    currency = serializers.CharField(
        required=False, help_text="Only for a customer who has no billing currency yet."
    )
    coupon = serializers.CharField(required=False, help_text="Coupon code.")
    promotion_code = serializers.CharField(required=False)
    billing_day = serializers.IntegerField(
        required=False, help_text="Calendar billing day (1-31); else the plan's or customer's."
    )
    price_list = serializers.CharField(required=False, help_text="Price list code.")
    parent = serializers.IntegerField(  # type: ignore[assignment]  # the API's name for it
        required=False, min_value=1, help_text="Base subscription of an add-on."
    )
    metadata = TimelineDataField(required=False)


class SubscriptionListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    status = serializers.ChoiceField(choices=Subscription.Status.choices, required=False)
    plan = serializers.CharField(required=False, help_text="Plan code or id.")


class ChangePlanSerializer(serializers.Serializer):
    plan = PlanReferenceField(help_text="Plan code or id.")
    policy = serializers.ChoiceField(
        choices=POLICY_CHOICES,
        required=False,
        help_text="Default: immediate for an upgrade, end_of_term otherwise.",
    )
    quantity = serializers.IntegerField(required=False)
    preview = serializers.BooleanField(
        required=False, default=False, help_text="Only show the invoice it would issue now."
    )


class ChangeQuantitySerializer(serializers.Serializer):
    quantity = serializers.IntegerField()
    policy = serializers.ChoiceField(
        choices=POLICY_CHOICES,
        required=False,
        help_text="Default: immediate for more, end_of_term for fewer.",
    )
    preview = serializers.BooleanField(required=False, default=False)


class CancelSerializer(serializers.Serializer):
    policy = serializers.ChoiceField(
        choices=POLICY_CHOICES, required=False, help_text="Default: end_of_term."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class UndoChangeSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="change_plan, change_quantity or pause.")


class PauseSerializer(serializers.Serializer):
    when = serializers.ChoiceField(choices=PAUSE_WHEN_CHOICES, required=False, default="now")
    cycles = serializers.IntegerField(
        required=False, help_text="Billing periods to pause for (1 when neither is given)."
    )
    resumes_on = serializers.DateField(required=False)


class ReactivateSerializer(serializers.Serializer):
    plan = PlanReferenceField(required=False, help_text="Another plan; default the same.")
