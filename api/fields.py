from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.errors import ValidationError
from core.money import format_amount, minor_units, parse_decimal


@extend_schema_field({"type": "string", "format": "decimal", "example": "19.99"})
class AmountField(serializers.Field):
    """An amount as a decimal string, with exactly the decimals of the object's currency.

    Input must be a plain decimal string ("19.99") or an integer: never a JSON float, which may
    already be inexact, nor "1e3" or "1_000".
    Serializers check the decimals against the currency in `validate`.
    """

    default_error_messages = {
        "invalid": 'Send amounts as decimal strings, for example "19.99".',
        "negative": "Amounts cannot be negative.",
    }

    def __init__(self, *, currency_source: str = "currency", exact: bool = True, **kwargs: Any):
        self.currency_source = currency_source
        self.exact = exact  # False for unit prices that may carry more decimals (per-call usage)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        currency = instance
        for part in self.currency_source.split("."):
            # Serializers render model instances and plain dicts (previews, reports) alike.
            currency = currency[part] if isinstance(currency, Mapping) else getattr(currency, part)
        return (value, currency)

    def to_representation(self, value: Any) -> str | None:
        amount, currency = value
        if amount is None:
            return None
        if self.exact:
            return format_amount(amount, currency)
        exponent = int(Decimal(amount).normalize().as_tuple().exponent)
        places = max(-exponent, minor_units(currency))
        return f"{Decimal(amount):.{places}f}"

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            amount = parse_decimal(data)
        except ValidationError:
            self.fail("invalid")
        if amount < 0:
            self.fail("negative")
        return amount


@extend_schema_field({"type": "string", "nullable": True})
class BlankAsNullField(serializers.Field):
    """An optional text shown as null while empty (the database stores "")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> Any:
        return str(value) or None


@extend_schema_field(OpenApiTypes.OBJECT)
class MetadataField(serializers.JSONField):
    """Free-form key/value data: a JSON object of at most 50 keys (checked by the service)."""
