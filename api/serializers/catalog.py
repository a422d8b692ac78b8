"""Shapes of the catalog in the API.

Objects refer to one another by code (`"product": "news"`, `"price_list": "europe"`); amounts
are decimal strings with exactly their currency's decimals (`"9.99"` USD, `"1500"` JPY,
`"3.125"` KWD), metered unit prices with up to 4. Input serializers check types only: the
rules (decimals per currency, phase order, tiers, places) are the services', so the API
answers with the services' error codes and params.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AmountField, BlankAsNullField, MetadataField
from catalog.models import (
    INTERVAL_CHOICES,
    Bundle,
    BundleComponent,
    BundlePrice,
    Coupon,
    CouponAmount,
    Feature,
    Meter,
    MeterPrice,
    MeterPriceTier,
    Plan,
    PlanMeter,
    PlanPhase,
    Price,
    PriceList,
    Product,
    PromotionCode,
    TaxRate,
)
from catalog.services import (
    BundleComponentSpec,
    BundlePriceSpec,
    CouponAmountSpec,
    PhaseSpec,
    PriceSpec,
    TierSpec,
)
from core.errors import ValidationError
from core.money import parse_decimal


@extend_schema_field({"type": "string", "format": "decimal", "example": "25"})
class DecimalStringField(serializers.Field):
    """A percentage or a quantity as a plain decimal string ("7.25", "1000")."""

    default_error_messages = {"invalid": 'Send a decimal string, for example "7.25".'}

    def to_representation(self, value: Decimal) -> str:
        text = f"{Decimal(value).normalize():f}"
        return "0" if text in ("-0", "0") else text

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return parse_decimal(data, param=self.field_name or "value")
        except ValidationError:
            self.fail("invalid")


def _code(**kwargs: Any) -> serializers.SlugRelatedField[Any]:
    """Another catalog object, shown by its code."""
    return serializers.SlugRelatedField(slug_field="code", read_only=True, **kwargs)


def _code_of(model: type[Any], **kwargs: Any) -> serializers.SlugRelatedField[Any]:
    """Another catalog object, given by its code."""
    return serializers.SlugRelatedField(
        slug_field="code", queryset=model._default_manager.all(), **kwargs
    )


def _codes_of(model: type[Any], **kwargs: Any) -> serializers.SlugRelatedField[Any]:
    return _code_of(model, many=True, required=False, **kwargs)


def _text(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, **kwargs)


INTERVALS = INTERVAL_CHOICES


# --- output -------------------------------------------------------------------------------------


class FeatureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feature
        fields = ["id", "code", "name", "description", "created_at", "archived_at"]
        read_only_fields = fields


class ProductSerializer(serializers.ModelSerializer):
    metadata = MetadataField(read_only=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "code",
            "name",
            "description",
            "kind",
            "delivery",
            "metadata",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class PhasePriceSerializer(serializers.ModelSerializer):
    price_list = _code()
    amount = AmountField(read_only=True, help_text="Per billing period and unit.")
    setup_fee = AmountField(read_only=True, help_text="Once, with the first period.")

    class Meta:
        model = Price
        fields = ["id", "price_list", "currency", "amount", "setup_fee", "effective_from"]
        read_only_fields = fields


class PlanPhaseSerializer(serializers.ModelSerializer):
    duration_unit = BlankAsNullField(help_text="Null for an evergreen phase.")
    prices = PhasePriceSerializer(
        many=True, read_only=True, help_text="Every price version of the phase."
    )

    class Meta:
        model = PlanPhase
        fields = ["id", "sequence", "kind", "duration_unit", "duration_count", "renews", "prices"]
        read_only_fields = fields


class PlanSerializer(serializers.ModelSerializer):
    product = _code()
    features = _code(many=True)
    addons = _code(many=True)
    metadata = MetadataField(read_only=True)
    phases = PlanPhaseSerializer(many=True, read_only=True)

    class Meta:
        model = Plan
        fields = [
            "id",
            "code",
            "name",
            "description",
            "product",
            "tier_rank",
            "billing_interval",
            "interval_count",
            "billing_day",
            "min_quantity",
            "max_quantity",
            "features",
            "addons",
            "metadata",
            "phases",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class PriceSerializer(PhasePriceSerializer):
    plan = _code(source="phase.plan")
    phase = serializers.IntegerField(
        source="phase.sequence", read_only=True, help_text="The phase's sequence in the plan."
    )

    class Meta(PhasePriceSerializer.Meta):
        fields = [
            "id",
            "plan",
            "phase",
            "price_list",
            "currency",
            "amount",
            "setup_fee",
            "effective_from",
            "created_at",
        ]
        read_only_fields = fields


class PriceListSerializer(serializers.ModelSerializer):
    segment = BlankAsNullField()

    class Meta:
        model = PriceList
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "countries",
            "segment",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class BundleComponentSerializer(serializers.ModelSerializer):
    plan = _code()

    class Meta:
        model = BundleComponent
        fields = ["plan", "quantity"]
        read_only_fields = fields


class BundlePriceSerializer(serializers.ModelSerializer):
    price_list = _code()
    amount = AmountField(read_only=True)

    class Meta:
        model = BundlePrice
        fields = ["id", "price_list", "currency", "amount", "effective_from", "created_at"]
        read_only_fields = fields


class BundleSerializer(serializers.ModelSerializer):
    discount_percent = DecimalStringField(read_only=True, allow_null=True)
    components = BundleComponentSerializer(many=True, read_only=True)
    prices = BundlePriceSerializer(many=True, read_only=True)

    class Meta:
        model = Bundle
        fields = [
            "id",
            "code",
            "name",
            "description",
            "pricing",
            "discount_percent",
            "components",
            "prices",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class CouponAmountSerializer(serializers.ModelSerializer):
    amount_off = AmountField(read_only=True)

    class Meta:
        model = CouponAmount
        fields = ["currency", "amount_off"]
        read_only_fields = fields


class CouponSerializer(serializers.ModelSerializer):
    percent_off = DecimalStringField(read_only=True, allow_null=True)
    amounts = CouponAmountSerializer(many=True, read_only=True)
    plans = _code(many=True, help_text="Empty: valid on every plan.")
    metadata = MetadataField(read_only=True)

    class Meta:
        model = Coupon
        fields = [
            "id",
            "code",
            "name",
            "discount_type",
            "percent_off",
            "amounts",
            "duration",
            "duration_cycles",
            "max_redemptions",
            "times_redeemed",
            "redeem_by",
            "plans",
            "metadata",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class PromotionCodeSerializer(serializers.ModelSerializer):
    coupon = _code()

    class Meta:
        model = PromotionCode
        fields = [
            "id",
            "code",
            "coupon",
            "active",
            "max_redemptions",
            "times_redeemed",
            "expires_at",
            "first_time_only",
            "created_at",
        ]
        read_only_fields = fields


class TaxRateSerializer(serializers.ModelSerializer):
    region = BlankAsNullField(
        help_text="ISO 3166-2 subdivision (CA for US-CA); null: country-wide."
    )
    percentage = DecimalStringField(read_only=True)

    class Meta:
        model = TaxRate
        fields = [
            "id",
            "name",
            "country",
            "region",
            "percentage",
            "inclusive",
            "active",
            "created_at",
        ]
        read_only_fields = fields


class MeterSerializer(serializers.ModelSerializer):
    field_name = BlankAsNullField(  # type: ignore[assignment]
        help_text="The event property aggregated; null for count."
    )

    class Meta:
        model = Meter
        fields = [
            "id",
            "code",
            "name",
            "aggregation",
            "field_name",
            "unit_label",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields


class MeterPriceTierSerializer(serializers.ModelSerializer):
    up_to = DecimalStringField(read_only=True, allow_null=True, help_text="Null: no limit.")
    unit_amount = AmountField(
        read_only=True, currency_source="price.currency", exact=False, help_text="Per unit."
    )
    flat_amount = AmountField(
        read_only=True, currency_source="price.currency", help_text="Once for the tier."
    )

    class Meta:
        model = MeterPriceTier
        fields = ["up_to", "unit_amount", "flat_amount"]
        read_only_fields = fields


class MeterPriceSerializer(serializers.ModelSerializer):
    price_list = _code()
    tiers = MeterPriceTierSerializer(many=True, read_only=True)

    class Meta:
        model = MeterPrice
        fields = [
            "id",
            "plan_meter",
            "price_list",
            "currency",
            "effective_from",
            "tiers",
            "created_at",
        ]
        read_only_fields = fields


class PlanMeterSerializer(serializers.ModelSerializer):
    plan = _code()
    meter = _code()
    prices = MeterPriceSerializer(many=True, read_only=True, help_text="Every price version.")

    class Meta:
        model = PlanMeter
        fields = ["id", "plan", "meter", "pricing", "prices"]
        read_only_fields = fields


# --- input --------------------------------------------------------------------------------------


class FeatureCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    description = _text()


class FeatureUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = _text()


class ProductCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    description = _text()
    kind = serializers.ChoiceField(choices=Product.Kind.choices, required=False)
    delivery = serializers.ChoiceField(choices=Product.Delivery.choices, required=False)
    metadata = MetadataField(required=False)


class ProductUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = _text()
    delivery = serializers.ChoiceField(choices=Product.Delivery.choices, required=False)
    metadata = MetadataField(required=False)


class PriceInputSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217.")
    amount = AmountField(help_text="No more decimals than the currency has.")
    setup_fee = AmountField(required=False, help_text="Defaults to 0.")
    price_list = _code_of(PriceList, required=False, help_text="Defaults to the default list.")

    def to_internal_value(self, data: Any) -> PriceSpec:
        values = super().to_internal_value(data)
        return PriceSpec(
            currency=values["currency"],
            amount=values["amount"],
            setup_fee=values.get("setup_fee", Decimal("0")),
            price_list=values.get("price_list"),
        )


class PhaseInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PlanPhase.Kind.choices)
    duration_unit = serializers.ChoiceField(
        choices=INTERVALS, required=False, allow_null=True, help_text="Not for evergreen."
    )
    duration_count = serializers.IntegerField(
        required=False, allow_null=True, help_text="Not for evergreen."
    )
    renews = serializers.BooleanField(required=False, help_text="Fixed term only.")
    prices = PriceInputSerializer(
        many=True, required=False, help_text="First prices, in effect from today."
    )

    def to_internal_value(self, data: Any) -> PhaseSpec:
        values = super().to_internal_value(data)
        return PhaseSpec(
            kind=values["kind"],
            duration_unit=values.get("duration_unit") or "",
            duration_count=values.get("duration_count"),
            renews=values.get("renews", False),
            prices=values.get("prices", []),
        )


class PlanCreateSerializer(serializers.Serializer):
    product = _code_of(Product)
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    description = _text()
    billing_interval = serializers.ChoiceField(choices=INTERVALS)
    interval_count = serializers.IntegerField(required=False)
    tier_rank = serializers.IntegerField(
        required=False, help_text="Higher ranks are higher tiers (bronze 1, silver 2, gold 3)."
    )
    billing_day = serializers.IntegerField(
        required=False, allow_null=True, help_text="Calendar billing on this day (1-31)."
    )
    min_quantity = serializers.IntegerField(required=False)
    max_quantity = serializers.IntegerField(required=False, allow_null=True)
    features = _codes_of(Feature)
    addons = _codes_of(Plan, help_text="Add-on plans (of add-on products, same interval).")
    metadata = MetadataField(required=False)
    phases = PhaseInputSerializer(
        many=True,
        help_text="In order: an optional trial, discount phases, then one evergreen or "
        "fixed-term phase. Fixed once the plan exists.",
    )


class PlanUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = _text()
    tier_rank = serializers.IntegerField(required=False)
    min_quantity = serializers.IntegerField(required=False)
    max_quantity = serializers.IntegerField(required=False, allow_null=True)
    features = _codes_of(Feature)
    addons = _codes_of(Plan)
    metadata = MetadataField(required=False)


class PriceCreateSerializer(serializers.Serializer):
    plan = _code_of(Plan)
    phase = serializers.IntegerField(
        required=False, help_text="The phase's sequence; defaults to the plan's final phase."
    )
    currency = serializers.CharField(help_text="ISO 4217.")
    amount = AmountField(help_text="No more decimals than the currency has.")
    setup_fee = AmountField(required=False, help_text="Defaults to 0.")
    price_list = _code_of(PriceList, required=False, help_text="Defaults to the default list.")
    effective_from = serializers.DateField(required=False, help_text="Defaults to today.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        plan: Plan = attrs.pop("plan")
        sequence = attrs.pop("phase", None)
        phases = plan.phases.order_by("-sequence")
        phase = phases.first() if sequence is None else phases.filter(sequence=sequence).first()
        if phase is None:
            raise serializers.ValidationError(
                {"phase": f"Plan {plan.code} has no phase {sequence}."}, code="not_found"
            )
        return {"phase": phase, **attrs}


class PriceListCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=PriceList.Kind.choices)
    countries = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Geography lists: ISO 3166-1."
    )
    segment = _text(help_text="Segment lists: the segment slug.")


class PriceListUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    countries = serializers.ListField(child=serializers.CharField(), required=False)
    segment = _text()


class BundleComponentInputSerializer(serializers.Serializer):
    plan = _code_of(Plan)
    quantity = serializers.IntegerField(required=False)

    def to_internal_value(self, data: Any) -> BundleComponentSpec:
        values = super().to_internal_value(data)
        return BundleComponentSpec(plan=values["plan"], quantity=values.get("quantity", 1))


class BundlePriceInputSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217.")
    amount = AmountField()
    price_list = _code_of(PriceList, required=False, help_text="Defaults to the default list.")

    def to_internal_value(self, data: Any) -> BundlePriceSpec:
        values = super().to_internal_value(data)
        return BundlePriceSpec(
            currency=values["currency"],
            amount=values["amount"],
            price_list=values.get("price_list"),
        )


class BundleCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    description = _text()
    pricing = serializers.ChoiceField(choices=Bundle.Pricing.choices)
    discount_percent = DecimalStringField(
        required=False, allow_null=True, help_text="percent_discount bundles only."
    )
    components = BundleComponentInputSerializer(many=True, help_text="Plans on one interval.")
    prices = BundlePriceInputSerializer(
        many=True, required=False, help_text="fixed_price bundles only: one per currency."
    )


class BundleUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    description = _text()


class BundlePriceCreateSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217.")
    amount = AmountField()
    price_list = _code_of(PriceList, required=False, help_text="Defaults to the default list.")
    effective_from = serializers.DateField(required=False, help_text="Defaults to today.")


class CouponAmountInputSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217.")
    amount_off = AmountField()

    def to_internal_value(self, data: Any) -> CouponAmountSpec:
        values = super().to_internal_value(data)
        return CouponAmountSpec(currency=values["currency"], amount_off=values["amount_off"])


class CouponCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    discount_type = serializers.ChoiceField(choices=Coupon.DiscountType.choices)
    percent_off = DecimalStringField(
        required=False, allow_null=True, help_text="percent coupons: more than 0, 100 at most."
    )
    amounts = CouponAmountInputSerializer(
        many=True, required=False, help_text="fixed coupons: the amount off per currency."
    )
    duration = serializers.ChoiceField(choices=Coupon.Duration.choices)
    duration_cycles = serializers.IntegerField(
        required=False, allow_null=True, help_text="repeating coupons: how many billing cycles."
    )
    max_redemptions = serializers.IntegerField(required=False, allow_null=True)
    redeem_by = serializers.DateTimeField(required=False, allow_null=True)
    plans = _codes_of(Plan, help_text="Restrict to these plans; none: every plan.")
    metadata = MetadataField(required=False)


class CouponUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    max_redemptions = serializers.IntegerField(required=False, allow_null=True)
    redeem_by = serializers.DateTimeField(required=False, allow_null=True)
    plans = _codes_of(Plan)
    metadata = MetadataField(required=False)


class PromotionCodeCreateSerializer(serializers.Serializer):
    coupon = _code_of(Coupon)
    code = serializers.CharField(help_text="What customers type; stored uppercase.")
    max_redemptions = serializers.IntegerField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    first_time_only = serializers.BooleanField(required=False)


class PromotionCodeUpdateSerializer(serializers.Serializer):
    max_redemptions = serializers.IntegerField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    first_time_only = serializers.BooleanField(required=False)


class TaxRateCreateSerializer(serializers.Serializer):
    name = serializers.CharField()
    country = serializers.CharField(help_text="ISO 3166-1 alpha-2.")
    region = _text(help_text="ISO 3166-2 subdivision: CA or US-CA; empty: country-wide.")
    percentage = DecimalStringField(help_text="0 to 100, 4 decimals at most.")
    inclusive = serializers.BooleanField(required=False, help_text="Prices include this tax.")
    active = serializers.BooleanField(required=False, help_text="Defaults to true.")


class TaxRateUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)


class MeterCreateSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Lowercase slug, unique; fixed once created.")
    name = serializers.CharField()
    aggregation = serializers.ChoiceField(choices=Meter.Aggregation.choices)
    field_name = _text(  # type: ignore[assignment]
        help_text="The event property aggregated (not for count)."
    )
    unit_label = serializers.CharField(required=False)


class MeterUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    unit_label = serializers.CharField(required=False)


class PlanMeterCreateSerializer(serializers.Serializer):
    plan = _code_of(Plan)
    meter = _code_of(Meter)
    pricing = serializers.ChoiceField(choices=PlanMeter.Pricing.choices)


class TierInputSerializer(serializers.Serializer):
    up_to = DecimalStringField(allow_null=True, help_text="Null: no limit (the last tier).")
    unit_amount = AmountField(required=False, help_text="Per unit; up to 4 decimals.")
    flat_amount = AmountField(required=False, help_text="Once for the tier.")

    def to_internal_value(self, data: Any) -> TierSpec:
        values = super().to_internal_value(data)
        return TierSpec(
            up_to=values["up_to"],
            unit_amount=values.get("unit_amount", Decimal("0")),
            flat_amount=values.get("flat_amount", Decimal("0")),
        )


class MeterPriceCreateSerializer(serializers.Serializer):
    plan_meter = serializers.PrimaryKeyRelatedField(queryset=PlanMeter.objects.all())
    currency = serializers.CharField(help_text="ISO 4217.")
    price_list = _code_of(PriceList, required=False, help_text="Defaults to the default list.")
    effective_from = serializers.DateField(required=False, help_text="Defaults to today.")
    tiers = TierInputSerializer(
        many=True,
        help_text="unit: one tier without limit; graduated/volume: ascending limits, the last "
        "without limit.",
    )
