"""Shapes of customers and interactions in the API.

Input serializers check types only; the rules (formats, the currency lock, partner scoping) are
the services', so the API answers with the services' error codes.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import BlankAsNullField, MetadataField
from catalog.models import PriceList
from core.errors import NotFoundError, PermissionDeniedError
from customers.models import Customer, Interaction, Partner
from customers.selectors import partner_get, price_list_get


@extend_schema_field({"type": "string", "nullable": True, "example": "acme"})
class PartnerCodeField(serializers.Field):
    """A partner by its code. A partner key may name only its own partner (403 otherwise,
    whether the other code exists or not, so codes cannot be probed)."""

    def to_representation(self, value: Partner) -> str:
        return value.code

    def to_internal_value(self, data: Any) -> Partner:
        if not isinstance(data, str) or not data.strip():
            raise serializers.ValidationError("Give a partner code.", code="invalid_partner")
        code = data.strip()
        scope: Partner | None = self.context.get("partner_scope")
        if scope is not None and code != scope.code:
            raise PermissionDeniedError(
                "A partner API key can only name its own partner.",
                code="partner_forbidden",
                param="partner",
            )
        try:
            return partner_get(code=code)
        except NotFoundError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None


@extend_schema_field({"type": "string", "nullable": True, "example": "default"})
class PriceListCodeField(serializers.Field):
    def to_representation(self, value: PriceList) -> str:
        return value.code

    def to_internal_value(self, data: Any) -> PriceList:
        if not isinstance(data, str) or not data.strip():
            raise serializers.ValidationError("Give a price list code.", code="invalid_price_list")
        try:
            return price_list_get(code=data.strip())
        except NotFoundError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None


class CustomerSerializer(serializers.ModelSerializer):
    currency = BlankAsNullField(help_text="Billing currency (ISO 4217); null until set.")
    country = BlankAsNullField(help_text="ISO 3166-1 alpha-2.")
    region = BlankAsNullField(help_text="ISO 3166-2 subdivision suffix (CA for US-CA).")
    postal_code = BlankAsNullField()
    tax_id = BlankAsNullField()
    partner = PartnerCodeField(read_only=True, allow_null=True, help_text="The partner's code.")
    price_list = PriceListCodeField(
        read_only=True, allow_null=True, help_text="The explicit price list's code."
    )
    metadata = MetadataField(read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "email",
            "name",
            "currency",
            "country",
            "region",
            "postal_code",
            "tax_id",
            "segments",
            "acquisition_channel",
            "partner",
            "price_list",
            "billing_day",
            "autocharge",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


def _optional_text(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=True, help_text=help_text
    )


class CustomerWriteSerializer(serializers.Serializer):
    """Creation (email and name required) and, with `partial=True`, changes."""

    external_id = serializers.CharField(
        required=False, help_text="Your own id for the customer (unique); generated if omitted."
    )
    email = serializers.CharField()
    name = serializers.CharField()
    currency = _optional_text("ISO 4217; can be set once, never changed afterwards.")
    country = _optional_text("ISO 3166-1 alpha-2.")
    region = _optional_text("ISO 3166-2 subdivision: CA or US-CA (needs a country).")
    postal_code = _optional_text()
    tax_id = _optional_text()
    segments = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Segment slugs."
    )
    acquisition_channel = serializers.ChoiceField(
        choices=Customer.Channel.choices,
        required=False,
        help_text="Defaults to `partner` for a partner's customer, else `organic`.",
    )
    partner = PartnerCodeField(
        required=False,
        allow_null=True,
        help_text="Partner code. Partner keys: always their own partner.",
    )
    price_list = PriceListCodeField(required=False, allow_null=True)
    billing_day = serializers.IntegerField(
        required=False, allow_null=True, help_text="Calendar billing day, 1 to 31."
    )
    autocharge = serializers.BooleanField(required=False)
    metadata = MetadataField(
        required=False, help_text="A JSON object, 50 keys at most, keys of 40 characters at most."
    )


class CustomerListQuerySerializer(serializers.Serializer):
    email = serializers.CharField(required=False, help_text="Exact email, case-insensitive.")
    external_id = serializers.CharField(required=False)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False, help_text="ISO 3166-1.")
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217.")
    partner = serializers.CharField(
        required=False,
        help_text="Partner code. A partner key's results stay within its own customers.",
    )
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after this time (inclusive)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Created before this time (exclusive)."
    )


class InteractionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(
        source="author_label", read_only=True, help_text="Who recorded it."
    )

    class Meta:
        model = Interaction
        fields = ["id", "channel", "note", "author", "occurred_at"]
        read_only_fields = fields


class InteractionCreateSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Interaction.Channel.choices)
    note = serializers.CharField()
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When it happened; now if omitted (never in the future)."
    )
