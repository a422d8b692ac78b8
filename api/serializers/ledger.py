"""Shapes of the ledger (accounts with balances, journal entries) and the financial reports."""

from __future__ import annotations

from rest_framework import serializers

from api.fields import AmountField
from api.serializers.billing import SignedAmountField
from billing.ledger.models import Account, AccountCode, JournalEntry, JournalLine


class AccountSerializer(serializers.ModelSerializer):
    debit_total = AmountField(read_only=True)
    credit_total = AmountField(read_only=True)
    balance = SignedAmountField(
        read_only=True, help_text="On the account's normal side: positive is the usual direction."
    )

    class Meta:
        model = Account
        fields = [
            "id",
            "code",
            "type",
            "currency",
            "party",
            "debit_total",
            "credit_total",
            "balance",
        ]
        read_only_fields = fields


class AccountListQuerySerializer(serializers.Serializer):
    currency = serializers.CharField(required=False, help_text="ISO 4217.")
    code = serializers.ChoiceField(choices=AccountCode.choices, required=False)
    party = serializers.CharField(
        required=False, allow_blank=True, help_text='A sub-ledger, e.g. "customer:42"; "" main.'
    )


class JournalLineSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="account_id", read_only=True)
    code = serializers.CharField(source="account.code", read_only=True)
    party = serializers.CharField(source="account.party", read_only=True)
    amount = AmountField(read_only=True)

    class Meta:
        model = JournalLine
        fields = ["account", "code", "party", "side", "amount", "currency"]
        read_only_fields = fields


class JournalEntrySerializer(serializers.ModelSerializer):
    reverses = serializers.IntegerField(source="reverses_id", read_only=True, allow_null=True)
    lines = JournalLineSerializer(many=True, read_only=True)

    class Meta:
        model = JournalEntry
        fields = [
            "id",
            "idempotency_key",
            "effective_date",
            "source_type",
            "source_id",
            "description",
            "reverses",
            "created_at",
            "lines",
        ]
        read_only_fields = fields


class JournalEntryListQuerySerializer(serializers.Serializer):
    source_type = serializers.CharField(required=False)
    source_id = serializers.CharField(required=False)
    effective_from = serializers.DateField(required=False)
    effective_to = serializers.DateField(required=False)
    account = serializers.IntegerField(required=False, min_value=1, help_text="Account id.")


class TrialBalanceQuerySerializer(serializers.Serializer):
    as_of = serializers.DateField(
        required=False, help_text="Effective dates up to this day; the current balances if absent."
    )
    currency = serializers.CharField(required=False, help_text="ISO 4217.")


class TrialBalanceRowSerializer(serializers.Serializer):
    code = serializers.CharField()
    type = serializers.CharField()
    currency = serializers.CharField()
    debit = AmountField(help_text="The net balance when it is a debit.")
    credit = AmountField(help_text="The net balance when it is a credit.")
    balance = SignedAmountField(help_text="On the account's normal side.")


class TrialBalanceTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    debit = AmountField()
    credit = AmountField()


class TrialBalanceSerializer(serializers.Serializer):
    as_of = serializers.DateField(allow_null=True)
    balanced = serializers.BooleanField()
    rows = TrialBalanceRowSerializer(many=True)
    totals = TrialBalanceTotalSerializer(many=True)


class PeriodQuerySerializer(serializers.Serializer):
    currency = serializers.CharField(required=False, help_text="ISO 4217.")
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)


class DeferredQuerySerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217.")
    start = serializers.DateField(help_text="Its month is the first shown.")
    end = serializers.DateField(help_text="Its month is the last shown.")


class RevenueMonthSerializer(serializers.Serializer):
    month = serializers.DateField(help_text="The first day of the month.")
    currency = serializers.CharField()
    recognized = SignedAmountField()
    refunds_and_credits = SignedAmountField()
    net = SignedAmountField()


class RevenueSerializer(serializers.Serializer):
    rows = RevenueMonthSerializer(many=True)


class DeferredMonthSerializer(serializers.Serializer):
    month = serializers.DateField()
    currency = serializers.CharField()
    opening = SignedAmountField()
    billed = SignedAmountField()
    recognized = SignedAmountField()
    reversed = SignedAmountField()
    closing = SignedAmountField(help_text="The deferred-revenue balance at the month's end.")


class DeferredSerializer(serializers.Serializer):
    rows = DeferredMonthSerializer(many=True)
