from __future__ import annotations

from rest_framework import serializers

from core.models import AuditLog


class AuditLogActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        source="actor_type", choices=AuditLog.ActorType.choices, read_only=True
    )
    id = serializers.CharField(
        source="actor_id",
        read_only=True,
        help_text="The API key's, staff user's or customer's id; empty for the system.",
    )
    # DRF's metaclass takes declared fields off the class, so this does not clobber Field.label.
    label = serializers.CharField(source="actor_label", read_only=True)  # type: ignore[assignment]


class AuditLogObjectSerializer(serializers.Serializer):
    type = serializers.CharField(
        source="object_type", read_only=True, help_text='"app.model", e.g. "customers.customer".'
    )
    id = serializers.CharField(source="object_id", read_only=True)
    repr = serializers.CharField(source="object_repr", read_only=True)


class AuditLogSerializer(serializers.ModelSerializer):
    actor = AuditLogActorSerializer(source="*", read_only=True)
    object = AuditLogObjectSerializer(source="*", read_only=True)
    before = serializers.DictField(
        allow_null=True, read_only=True, help_text="The object's fields before the change."
    )
    after = serializers.DictField(
        allow_null=True, read_only=True, help_text="The object's fields after the change."
    )

    class Meta:
        model = AuditLog
        fields = ["id", "occurred_at", "actor", "action", "object", "before", "after", "request_id"]
        read_only_fields = fields


class AuditLogFilterSerializer(serializers.Serializer):
    """Query parameters of the audit log list; each one narrows the list by exact match."""

    object_type = serializers.CharField(
        required=False, max_length=100, help_text='"app.model", e.g. "customers.customer".'
    )
    object_id = serializers.CharField(required=False, max_length=64)
    action = serializers.CharField(
        required=False, max_length=100, help_text='e.g. "test_clock.advance".'
    )
    request_id = serializers.CharField(
        required=False, max_length=64, help_text="The X-Request-ID of the request that wrote."
    )
    actor_type = serializers.ChoiceField(required=False, choices=AuditLog.ActorType.choices)
    actor_id = serializers.CharField(required=False, max_length=64)
