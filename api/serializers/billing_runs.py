"""Shapes of the billing runs: a run's counters and progress, and the request to start one."""

from __future__ import annotations

from rest_framework import serializers

from subscriptions.billing_run import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from subscriptions.models import BillingRun, BillingRunFailure


class BillingRunFailureSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingRunFailure
        fields = ["family_kind", "family_key", "subscription", "error_type", "error", "created_at"]
        read_only_fields = fields


class BillingRunSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True, help_text="Processed / due, 0.0 to 1.0.")
    duration_seconds = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Empty while the run is running."
    )
    failures = BillingRunFailureSerializer(many=True, read_only=True)

    class Meta:
        model = BillingRun
        fields = [
            "id",
            "as_of",
            "status",
            "actor_label",
            "chunk_size",
            "due",
            "processed",
            "invoices",
            "failed",
            "chunks_total",
            "chunks_done",
            "progress",
            "counts",
            "started_at",
            "finished_at",
            "duration_seconds",
            "failures",
        ]
        read_only_fields = fields


class BillingRunStartSerializer(serializers.Serializer):
    as_of = serializers.DateField(
        required=False, help_text="Process everything due by this day; default today."
    )
    chunk_size = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_CHUNK_SIZE,
        default=DEFAULT_CHUNK_SIZE,
        help_text="Families of subscriptions per worker task.",
    )
