"""The catalog: what can be sold, at which price, in which currency.

Prices are versioned rows that are never edited once in use: a new price is a new row with a
later `effective_from`, and subscriptions point at the row they signed up at (grandfathering).
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.money import DECIMAL_PLACES, MAX_DIGITS
from core.periods import Interval, IntervalUnit


def _amount_field(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


def _currency_field(**kwargs: object) -> models.CharField:
    return models.CharField(max_length=3, **kwargs)  # type: ignore[arg-type]


CURRENCY_FORMAT = Q(currency__regex=r"^[A-Z]{3}$")
INTERVAL_CHOICES = [(unit.value, unit.value) for unit in IntervalUnit]
VERSION_EXISTS = (
    "A version in this currency on this price list already starts on this date; prices are "
    "never edited, so choose another date."
)
# A CHECK constraint passes when its condition is NULL, so every comparison on a nullable column
# below says `__isnull=False` too (a repeating coupon with no cycle count must fail, not pass).


class ArchivableQuerySet(models.QuerySet):
    def active(self) -> ArchivableQuerySet:
        return self.filter(archived_at__isnull=True)


class Feature(models.Model):
    """A capability a subscriber is entitled to (for example `hd_streaming`)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    def __str__(self) -> str:
        return self.code


class Product(models.Model):
    class Kind(models.TextChoices):
        BASE = "base", "Base product"
        ADDON = "addon", "Add-on"
        STANDALONE = "standalone", "Standalone"

    class Delivery(models.TextChoices):
        DIGITAL = "digital", "Digital"
        PHYSICAL = "physical", "Physical"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BASE)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.DIGITAL)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """A way to buy a product: a tier (bronze < silver < gold) and a billing interval."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="plans")
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tier_rank = models.PositiveSmallIntegerField(
        default=0, help_text="Higher ranks are higher tiers (bronze 1, silver 2, gold 3)."
    )
    billing_interval = models.CharField(max_length=8, choices=INTERVAL_CHOICES)
    interval_count = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    billing_day = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Calendar alignment: bill on this day of the month (1-31). Empty: anniversary.",
    )
    min_quantity = models.PositiveIntegerField(default=1)
    max_quantity = models.PositiveIntegerField(null=True, blank=True)
    features = models.ManyToManyField(Feature, blank=True, related_name="plans")
    addons = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="available_on",
        help_text="Add-on plans that can be attached to a subscription of this plan.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(billing_interval__in=[u.value for u in IntervalUnit]),
                name="plan_billing_interval_valid",
            ),
            models.CheckConstraint(
                condition=Q(interval_count__gte=1), name="plan_interval_count_min_1"
            ),
            models.CheckConstraint(
                condition=Q(billing_day__isnull=True) | Q(billing_day__gte=1, billing_day__lte=31),
                name="plan_billing_day_in_month",
            ),
            models.CheckConstraint(
                condition=Q(min_quantity__gte=1), name="plan_min_quantity_min_1"
            ),
            models.CheckConstraint(
                condition=Q(max_quantity__isnull=True) | Q(max_quantity__gte=F("min_quantity")),
                name="plan_max_quantity_gte_min",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def interval(self) -> Interval:
        return Interval(IntervalUnit(self.billing_interval), self.interval_count)


class PlanPhase(models.Model):
    """One step of a plan's life (Kill Bill's model): trial -> discount -> fixed-term | evergreen.

    The last phase has no duration (evergreen) or is a fixed term that ends or renews.
    """

    class Kind(models.TextChoices):
        TRIAL = "trial", "Trial"
        DISCOUNT = "discount", "Discount (intro price)"
        FIXED_TERM = "fixed_term", "Fixed term"
        EVERGREEN = "evergreen", "Evergreen"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="phases")
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    duration_unit = models.CharField(max_length=8, choices=INTERVAL_CHOICES, blank=True)
    duration_count = models.PositiveSmallIntegerField(null=True, blank=True)
    renews = models.BooleanField(
        default=False, help_text="Fixed term only: start a new term at the end instead of ending."
    )

    class Meta:
        ordering = ["plan", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="plan_phase_sequence_unique"),
            models.CheckConstraint(
                condition=(
                    Q(kind="evergreen", duration_count__isnull=True, duration_unit="")
                    | (
                        ~Q(kind="evergreen")
                        & Q(duration_count__isnull=False, duration_count__gte=1)
                        & Q(duration_unit__in=[u.value for u in IntervalUnit])
                    )
                ),
                name="plan_phase_duration_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(renews=False) | Q(kind="fixed_term"),
                name="plan_phase_only_fixed_term_renews",
            ),
        ]

    def __str__(self) -> str:
        label = f"{self.plan.code} #{self.sequence} {self.kind}"
        if self.duration_count:
            return f"{label} {self.duration_count} {self.duration_unit}"
        return label

    @property
    def duration(self) -> Interval | None:
        if self.duration_count is None:
            return None
        return Interval(IntervalUnit(self.duration_unit), self.duration_count)


class PriceList(models.Model):
    """A set of prices for a market: the default list, or one per geography, segment or partner."""

    class Kind(models.TextChoices):
        DEFAULT = "default", "Default"
        GEOGRAPHY = "geography", "Geography"
        SEGMENT = "segment", "Segment"
        PARTNER = "partner", "Partner"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    countries = ArrayField(
        models.CharField(max_length=2), default=list, blank=True, help_text="ISO 3166-1 alpha-2"
    )
    segment = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(kind="default"),
                name="price_list_one_default",
                violation_error_message="There is already a default price list.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="geography") | ~Q(countries=[]),
                name="price_list_geography_has_countries",
            ),
            models.CheckConstraint(
                condition=~Q(kind="segment") | ~Q(segment=""),
                name="price_list_segment_has_segment",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Price(models.Model):
    """The recurring price of a plan phase in one currency on one price list, from a date on.

    Rows are immutable once created (a database trigger refuses UPDATE); a price change is a
    new version (a later `effective_from`), and older versions stay for the subscribers who
    signed up at them.
    """

    phase = models.ForeignKey(PlanPhase, on_delete=models.CASCADE, related_name="prices")
    price_list = models.ForeignKey(PriceList, on_delete=models.PROTECT, related_name="prices")
    currency = _currency_field()
    amount = _amount_field(help_text="Recurring amount per billing period and per unit.")
    setup_fee = _amount_field(default=Decimal("0"), help_text="One-time fee with the first period.")
    effective_from = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["phase", "price_list", "currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["phase", "price_list", "currency", "effective_from"],
                name="price_version_unique",
                violation_error_message=VERSION_EXISTS,
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="price_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(setup_fee__gte=0), name="price_setup_fee_not_negative"
            ),
            models.CheckConstraint(condition=CURRENCY_FORMAT, name="price_currency_iso"),
        ]
        indexes = [models.Index(fields=["phase", "currency", "price_list", "-effective_from"])]

    def __str__(self) -> str:
        return (
            f"{self.phase} {self.amount} {self.currency} "
            f"({self.price_list.code} from {self.effective_from})"
        )


class Bundle(models.Model):
    """Plans sold together (print + digital), priced as a whole or at a discount on the parts."""

    class Pricing(models.TextChoices):
        FIXED_PRICE = "fixed_price", "Bundle price"
        PERCENT_DISCOUNT = "percent_discount", "Discount on the components"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    pricing = models.CharField(max_length=20, choices=Pricing.choices)
    discount_percent = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(pricing="fixed_price", discount_percent__isnull=True)
                    | Q(
                        pricing="percent_discount",
                        discount_percent__isnull=False,
                        discount_percent__gt=0,
                        discount_percent__lte=100,
                    )
                ),
                name="bundle_pricing_consistent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BundleComponent(models.Model):
    bundle = models.ForeignKey(Bundle, on_delete=models.CASCADE, related_name="components")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="bundle_components")
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bundle", "plan"], name="bundle_component_unique"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="bundle_component_quantity_min_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bundle.code}: {self.quantity} x {self.plan.code}"


class BundlePrice(models.Model):
    """The price of a fixed-price bundle per currency (versioned like `Price`)."""

    bundle = models.ForeignKey(Bundle, on_delete=models.CASCADE, related_name="prices")
    price_list = models.ForeignKey(
        PriceList, on_delete=models.PROTECT, related_name="bundle_prices"
    )
    currency = _currency_field()
    amount = _amount_field()
    effective_from = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bundle", "price_list", "currency", "effective_from"],
                name="bundle_price_version_unique",
                violation_error_message=VERSION_EXISTS,
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="bundle_price_not_negative"),
            models.CheckConstraint(condition=CURRENCY_FORMAT, name="bundle_price_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.bundle.code} {self.amount} {self.currency}"


class Coupon(models.Model):
    class DiscountType(models.TextChoices):
        PERCENT = "percent", "Percent off"
        FIXED = "fixed", "Fixed amount off (per currency)"

    class Duration(models.TextChoices):
        ONCE = "once", "Once"
        REPEATING = "repeating", "For N billing cycles"
        FOREVER = "forever", "Forever"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    discount_type = models.CharField(max_length=10, choices=DiscountType.choices)
    percent_off = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    duration = models.CharField(max_length=10, choices=Duration.choices)
    duration_cycles = models.PositiveSmallIntegerField(null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(default=0)
    redeem_by = models.DateTimeField(null=True, blank=True)
    plans = models.ManyToManyField(
        Plan, blank=True, related_name="coupons", help_text="Empty: valid on every plan."
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        discount_type="percent",
                        percent_off__isnull=False,
                        percent_off__gt=0,
                        percent_off__lte=100,
                    )
                    | Q(discount_type="fixed", percent_off__isnull=True)
                ),
                name="coupon_discount_consistent",
            ),
            models.CheckConstraint(
                condition=(
                    Q(duration="repeating", duration_cycles__isnull=False, duration_cycles__gte=1)
                    | (~Q(duration="repeating") & Q(duration_cycles__isnull=True))
                ),
                name="coupon_duration_cycles_consistent",
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True)
                | Q(times_redeemed__lte=F("max_redemptions")),
                name="coupon_redemptions_within_max",
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True) | Q(max_redemptions__gte=1),
                name="coupon_max_redemptions_min_1",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class CouponAmount(models.Model):
    """Amount off of a fixed coupon, one row per currency."""

    coupon = models.ForeignKey(Coupon, on_delete=models.CASCADE, related_name="amounts")
    currency = _currency_field()
    amount_off = _amount_field()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["coupon", "currency"], name="coupon_amount_currency_unique"
            ),
            models.CheckConstraint(condition=Q(amount_off__gt=0), name="coupon_amount_positive"),
            models.CheckConstraint(condition=CURRENCY_FORMAT, name="coupon_amount_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.coupon.code}: {self.amount_off} {self.currency} off"


class PromotionCode(models.Model):
    """A customer-facing code (SPRING25) that redeems a coupon, with its own limits."""

    coupon = models.ForeignKey(Coupon, on_delete=models.CASCADE, related_name="promotion_codes")
    code = models.CharField(max_length=64, unique=True)
    active = models.BooleanField(default=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    first_time_only = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True)
                | Q(times_redeemed__lte=F("max_redemptions")),
                name="promotion_code_redemptions_within_max",
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions__isnull=True) | Q(max_redemptions__gte=1),
                name="promotion_code_max_redemptions_min_1",
            ),
            models.CheckConstraint(
                condition=Q(code__regex=r"^[A-Z0-9_-]+$"), name="promotion_code_upper_alnum"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class TaxRate(models.Model):
    """A tax rate for a country and optionally a region (ISO 3166-2), inclusive or exclusive."""

    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=6, blank=True, help_text="ISO 3166-2 subdivision, e.g. CA")
    percentage = models.DecimalField(max_digits=7, decimal_places=4)
    inclusive = models.BooleanField(default=False, help_text="Prices already include this tax.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage__gte=0, percentage__lte=100),
                name="tax_rate_percentage_range",
            ),
            models.CheckConstraint(
                condition=Q(country__regex=r"^[A-Z]{2}$"), name="tax_rate_country_iso"
            ),
            # The subdivision part of ISO 3166-2 (CA for US-CA): one to three letters or digits.
            models.CheckConstraint(
                condition=Q(region="") | Q(region__regex=r"^[A-Z0-9]{1,3}$"),
                name="tax_rate_region_iso",
            ),
            models.UniqueConstraint(
                fields=["country", "region"],
                condition=Q(active=True),
                name="tax_rate_one_active_per_place",
                violation_error_message=(
                    "This place already has an active tax rate; deactivate it first."
                ),
            ),
        ]

    def __str__(self) -> str:
        place = f"{self.country}-{self.region}" if self.region else self.country
        return f"{self.name} {self.percentage}% ({place})"


class Meter(models.Model):
    """What usage is counted and how events aggregate over a billing period."""

    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum of a property"
        MAX = "max", "Maximum of a property"
        UNIQUE_COUNT = "unique_count", "Count of distinct values of a property"
        COUNT = "count", "Number of events"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    unit_label = models.CharField(max_length=50, default="unit")
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    field_name = models.CharField(
        max_length=64, blank=True, help_text="Event property aggregated (empty for count)."
    )
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = ArchivableQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(aggregation="count") | ~Q(field_name=""),
                name="meter_field_required_unless_count",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class PlanMeter(models.Model):
    """A metered charge on a plan: usage of `meter`, billed in arrears at period end."""

    class Pricing(models.TextChoices):
        UNIT = "unit", "Per unit"
        GRADUATED = "graduated", "Graduated tiers (each tier at its own price)"
        VOLUME = "volume", "Volume tiers (all units at the reached tier's price)"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="meters")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="plan_meters")
    pricing = models.CharField(max_length=10, choices=Pricing.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "meter"], name="plan_meter_unique")]

    def __str__(self) -> str:
        return f"{self.plan.code}/{self.meter.code} ({self.pricing})"


class MeterPrice(models.Model):
    """Per-currency, versioned price of a metered charge; tiers hold the amounts."""

    plan_meter = models.ForeignKey(PlanMeter, on_delete=models.CASCADE, related_name="prices")
    price_list = models.ForeignKey(PriceList, on_delete=models.PROTECT, related_name="meter_prices")
    currency = _currency_field()
    effective_from = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["plan_meter", "price_list", "currency", "effective_from"],
                name="meter_price_version_unique",
                violation_error_message=VERSION_EXISTS,
            ),
            models.CheckConstraint(condition=CURRENCY_FORMAT, name="meter_price_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.plan_meter} {self.currency} from {self.effective_from}"


class MeterPriceTier(models.Model):
    """Units up to `up_to` (inclusive; empty = no limit) cost `unit_amount` each plus `flat_amount`.

    A unit-priced charge has one tier with no limit.
    """

    price = models.ForeignKey(MeterPrice, on_delete=models.CASCADE, related_name="tiers")
    up_to = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    unit_amount = _amount_field(default=Decimal("0"))
    flat_amount = _amount_field(default=Decimal("0"))

    class Meta:
        ordering = ["price", F("up_to").asc(nulls_last=True)]
        constraints = [
            models.UniqueConstraint(
                fields=["price", "up_to"], nulls_distinct=False, name="meter_price_tier_unique"
            ),
            models.CheckConstraint(
                condition=Q(unit_amount__gte=0), name="meter_tier_unit_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(flat_amount__gte=0), name="meter_tier_flat_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(up_to__isnull=True) | Q(up_to__gt=0), name="meter_tier_up_to_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"up to {self.up_to or '∞'}: {self.unit_amount}/unit + {self.flat_amount}"
