"""Shapes of dunning cases in the API (read-only: dunning moves by itself)."""

from __future__ import annotations

from rest_framework import serializers

from subscriptions.models import DunningCase


class DunningCaseSerializer(serializers.ModelSerializer):
    invoice = serializers.IntegerField(source="invoice_id", read_only=True, help_text="Invoice id.")
    customer = serializers.IntegerField(
        source="customer_id", read_only=True, help_text="Customer id."
    )
    subscriptions: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="The subscriptions billed on the invoice."
    )
    status = serializers.ChoiceField(choices=DunningCase.Status.choices, read_only=True)
    stage = serializers.ChoiceField(
        choices=DunningCase.Stage.choices,
        read_only=True,
        help_text="past_due, then warning, then blocked (the subscriptions grant no features).",
    )
    outcome = serializers.ChoiceField(
        choices=DunningCase.Outcome.choices,
        read_only=True,
        allow_null=True,
        help_text="How a closed case ended; null while open.",
    )
    last_decline_kind = serializers.CharField(
        read_only=True, help_text='"soft" (retried on schedule), "hard" (waits for a new card).'
    )
    final_action_on = serializers.SerializerMethodField(
        help_text="The day the final action is taken if the invoice is still unpaid."
    )

    class Meta:
        model = DunningCase
        fields = [
            "id",
            "invoice",
            "customer",
            "subscriptions",
            "status",
            "stage",
            "outcome",
            "first_failed_at",
            "first_failed_on",
            "next_retry_on",
            "retries",
            "last_retry_on",
            "attempts",
            "last_decline_code",
            "last_decline_kind",
            "final_action_on",
            "created_at",
            "closed_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: DunningCase) -> dict[str, object]:
        data = super().to_representation(instance)
        data["outcome"] = instance.outcome or None
        return data

    def get_final_action_on(self, case: DunningCase) -> str | None:
        from subscriptions.dunning import dunning_final_action_on

        if case.status != DunningCase.Status.OPEN:
            return None
        return dunning_final_action_on(case).isoformat()


class DunningCaseListQuerySerializer(serializers.Serializer):
    customer = serializers.IntegerField(required=False, min_value=1, help_text="Customer id.")
    status = serializers.ChoiceField(choices=DunningCase.Status.choices, required=False)
    stage = serializers.ChoiceField(choices=DunningCase.Stage.choices, required=False)
