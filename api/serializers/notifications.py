"""Shapes of the notification log in the API (read-only)."""

from __future__ import annotations

from rest_framework import serializers

from core.notifications.models import Notification


class NotificationRelatedSerializer(serializers.Serializer):
    type = serializers.CharField(
        source="related_type",
        read_only=True,
        help_text='"app.model" of what it is about, e.g. "subscriptions.subscription".',
    )
    id = serializers.CharField(source="related_id", read_only=True)


class NotificationSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(
        source="customer_id", read_only=True, allow_null=True, help_text="Customer id."
    )
    related = serializers.SerializerMethodField(
        help_text="What the notification is about; null when it is about nothing in particular."
    )
    status = serializers.ChoiceField(
        choices=Notification.Status.choices,
        read_only=True,
        help_text=(
            "pending: being sent, or waiting for another attempt (next_attempt_at); sent: the "
            "mail server took it; failed: given up (see error)."
        ),
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "dedupe_key",
            "recipient",
            "subject",
            "status",
            "attempts",
            "error",
            "next_attempt_at",
            "customer",
            "related",
            "template",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields

    def get_related(self, notification: Notification) -> dict[str, str] | None:
        if not notification.related_type:
            return None
        return dict(NotificationRelatedSerializer(notification).data)


class NotificationDetailSerializer(NotificationSerializer):
    class Meta(NotificationSerializer.Meta):
        fields = [*NotificationSerializer.Meta.fields, "body_text", "body_html"]
        read_only_fields = fields


class NotificationListQuerySerializer(serializers.Serializer):
    kind = serializers.CharField(
        required=False,
        max_length=64,
        help_text='e.g. "renewal_notice", "trial_ending", "price_change".',
    )
    customer = serializers.IntegerField(required=False, help_text="Customer id.")
    status = serializers.ChoiceField(choices=Notification.Status.choices, required=False)
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after this time (inclusive)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Created before this time (exclusive)."
    )
