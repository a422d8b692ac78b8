"""Shapes of webhook endpoints, events and deliveries in the API.

Input serializers check types only; the rules (URL, event types, partner) are the services'.
The signing secret appears only in the answers to creating an endpoint and rolling its secret.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers.customers import PartnerCodeField
from core.webhooks.events import EVENT_TYPE_CHOICES, SUBSCRIBABLE
from core.webhooks.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)

_EVENTS_HELP = (
    'Event types to send: types such as "invoice.paid", a group such as "invoice.*", or ["*"] '
    "for every type."
)


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "enum": sorted(SUBSCRIBABLE)}, "minItems": 1}
)
class EnabledEventsField(serializers.ListField):
    child = serializers.CharField()


class WebhookEndpointSerializer(serializers.ModelSerializer):
    enabled_events = EnabledEventsField(read_only=True, help_text=_EVENTS_HELP)
    partner = PartnerCodeField(
        read_only=True,
        allow_null=True,
        help_text="The partner whose customers' events it receives; null: all events.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "enabled_events",
            "status",
            "disabled_reason",
            "disabled_at",
            "consecutive_failures",
            "failing_since",
            "partner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret (whsec_...). Shown only now: store it safely.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointCreateSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="https URL that receives the POSTs.")
    enabled_events = EnabledEventsField(help_text=_EVENTS_HELP)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    partner = PartnerCodeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Partner code: the endpoint then receives only events about that partner's "
        "customers.",
    )


class WebhookEndpointUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(required=False)
    enabled_events = EnabledEventsField(required=False, help_text=_EVENTS_HELP)
    description = serializers.CharField(required=False, allow_blank=True)


class WebhookEndpointListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WebhookEndpoint.Status.choices, required=False)


class WebhookEndpointDisableSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why; kept on the endpoint."
    )


class WebhookEndpointRollSecretSerializer(serializers.Serializer):
    keep_previous_hours = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=24,
        help_text="Hours during which requests carry a second signature made with the old "
        "secret, so receivers can switch without rejecting anything (0: replace at once).",
    )


class WebhookDeliveryAttemptSerializer(serializers.ModelSerializer):
    request_headers = serializers.DictField(
        child=serializers.CharField(), read_only=True, help_text="As sent (no secret in them)."
    )

    class Meta:
        model = WebhookDeliveryAttempt
        fields = [
            "attempt_number",
            "url",
            "request_headers",
            "response_status",
            "response_excerpt",
            "duration_ms",
            "error",
            "succeeded",
            "attempted_at",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(
        source="event.public_id", read_only=True, help_text="The event's id (evt_...)."
    )
    event_type = serializers.CharField(source="event.type", read_only=True)
    endpoint = serializers.IntegerField(source="endpoint_id", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "event_type",
            "endpoint",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "last_response_status",
            "last_response_excerpt",
            "last_error",
            "succeeded_at",
            "created_at",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    attempts = WebhookDeliveryAttemptSerializer(many=True, read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "attempts"]
        read_only_fields = fields


class WebhookDeliveryListQuerySerializer(serializers.Serializer):
    endpoint = serializers.IntegerField(required=False, help_text="Endpoint id.")
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)
    event = serializers.CharField(required=False, help_text="Event id (evt_...).")


class EventSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True, help_text="evt_...")
    type = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES, read_only=True)
    customer = serializers.IntegerField(
        source="customer_id",
        read_only=True,
        allow_null=True,
        help_text="The customer the event concerns.",
    )
    # Named like the webhook body's "data"; DRF's metaclass takes declared fields off the class,
    # so it never shadows `Serializer.data` (the stubs cannot know that).
    data = serializers.JSONField(  # type: ignore[assignment]
        source="payload", read_only=True, help_text="The resource as it was after the change."
    )

    class Meta:
        model = OutboxEvent
        fields = ["id", "type", "customer", "data", "created_at"]
        read_only_fields = fields


class EventDetailSerializer(EventSerializer):
    deliveries = WebhookDeliverySerializer(
        many=True, read_only=True, source="visible_deliveries", help_text="One per endpoint."
    )

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "deliveries"]
        read_only_fields = fields


class EventListQuerySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES, required=False)
    customer = serializers.IntegerField(required=False, help_text="Customer id.")
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after this time (inclusive)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Created before this time (exclusive)."
    )
