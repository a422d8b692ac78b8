"""Catalog reads: price versions and their fallback, price-list resolution, tax-rate
precedence, coupon redeemability and promotion-code lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from catalog import selectors, services
from catalog.models import Coupon, Plan, PlanPhase, Price, PriceList, PromotionCode
from catalog.services import CouponAmountSpec, TierSpec
from core.actors import SYSTEM
from core.errors import ConflictError, ValidationError
from core.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def phase(plan: Plan) -> PlanPhase:
    return plan.phases.get()


@pytest.fixture
def geo_list(clock: Any) -> PriceList:
    return services.price_list_create(
        code="europe", name="Europe", kind="geography", countries=["DE", "FR"], actor=SYSTEM
    )


# --- price versions -----------------------------------------------------------------------------


def test_a_new_version_applies_from_its_date_and_leaves_the_old_row_alone(
    phase: PlanPhase, clock: Any
) -> None:
    original = Price.objects.get(phase=phase)
    original_values = (original.pk, original.amount, original.effective_from, original.created_at)

    raised = services.price_create(
        phase=phase,
        currency="USD",
        amount=Decimal("12.99"),
        effective_from=date(2026, 3, 1),
        actor=SYSTEM,
    )

    assert selectors.price_for(phase=phase, currency="USD", on=date(2026, 2, 28)) == original
    assert selectors.price_for(phase=phase, currency="USD", on=date(2026, 3, 1)) == raised
    assert selectors.price_for(phase=phase, currency="usd", on=date(2027, 1, 1)) == raised
    assert selectors.price_for(phase=phase, currency="USD") == original  # today is Jan 15
    clock(datetime(2026, 3, 1, tzinfo=UTC))
    assert selectors.price_for(phase=phase, currency="USD") == raised
    original.refresh_from_db()
    assert (
        original.pk,
        original.amount,
        original.effective_from,
        original.created_at,
    ) == original_values
    assert Price.objects.filter(phase=phase).count() == 2


def test_no_price_before_the_first_version_or_in_another_currency(phase: PlanPhase) -> None:
    assert selectors.price_for(phase=phase, currency="USD", on=date(2026, 1, 14)) is None
    assert selectors.price_for(phase=phase, currency="EUR") is None


def test_the_same_version_twice_is_refused_and_nothing_is_written(phase: PlanPhase) -> None:
    with pytest.raises(ConflictError) as error:
        services.price_create(phase=phase, currency="USD", amount=Decimal("11"), actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("price_version_exists", "effective_from")
    assert list(Price.objects.values_list("amount", flat=True)) == [Decimal("9.99")]
    assert AuditLog.objects.filter(action="price.create").count() == 1


def test_a_version_cannot_be_dated_in_the_past(phase: PlanPhase) -> None:
    with pytest.raises(ValidationError) as error:
        services.price_create(
            phase=phase,
            currency="USD",
            amount=Decimal("11"),
            effective_from=date(2026, 1, 14),
            actor=SYSTEM,
        )

    assert (error.value.code, error.value.param) == ("effective_from_in_past", "effective_from")


def test_a_price_list_s_own_version_wins_and_the_default_fills_in(
    phase: PlanPhase, geo_list: PriceList, default_list: PriceList
) -> None:
    european_usd = services.price_create(
        phase=phase, currency="USD", amount=Decimal("8.99"), price_list=geo_list, actor=SYSTEM
    )
    later_eur = services.price_create(
        phase=phase,
        currency="EUR",
        amount=Decimal("7.99"),
        price_list=geo_list,
        effective_from=date(2026, 2, 1),
        actor=SYSTEM,
    )
    default_eur = services.price_create(
        phase=phase, currency="EUR", amount=Decimal("9.49"), actor=SYSTEM
    )

    assert selectors.price_for(phase=phase, currency="USD", price_list=geo_list) == european_usd
    # Until the list's own EUR version starts, the default list's EUR price applies.
    assert selectors.price_for(phase=phase, currency="EUR", price_list=geo_list) == default_eur
    assert (
        selectors.price_for(phase=phase, currency="EUR", price_list=geo_list, on=date(2026, 2, 1))
        == later_eur
    )
    default_usd = selectors.price_for(phase=phase, currency="USD", price_list=default_list)
    assert default_usd is not None
    assert default_usd.amount == Decimal("9.99")
    assert selectors.price_for(phase=phase, currency="USD") == default_usd


def test_plan_prices_lists_each_phase(make_plan: Callable[..., Plan]) -> None:
    plan = make_plan(
        "with-trial",
        phases=[
            services.PhaseSpec(kind="trial", duration_unit="day", duration_count=7),
            services.PhaseSpec(kind="evergreen", prices=[services.PriceSpec("USD", Decimal("20"))]),
        ],
    )

    prices = selectors.plan_prices(plan=plan, currency="USD")

    assert prices[1] is None
    assert prices[2] is not None
    assert prices[2].amount == Decimal("20")


def test_bundle_and_meter_prices_follow_the_same_versioning(
    make_plan: Callable[..., Plan], plan_meter: Any
) -> None:
    bundle = services.bundle_create(
        code="duo",
        name="Duo",
        pricing="fixed_price",
        components=[
            services.BundleComponentSpec(make_plan("a")),
            services.BundleComponentSpec(make_plan("b")),
        ],
        prices=[services.BundlePriceSpec("USD", Decimal("15"))],
        actor=SYSTEM,
    )
    services.bundle_price_create(
        bundle=bundle,
        currency="USD",
        amount=Decimal("17"),
        effective_from=date(2026, 4, 1),
        actor=SYSTEM,
    )
    first = services.meter_price_create(
        plan_meter=plan_meter, currency="USD", tiers=[TierSpec(up_to=None)], actor=SYSTEM
    )

    march = selectors.bundle_price_for(bundle=bundle, currency="USD", on=date(2026, 3, 31))
    april = selectors.bundle_price_for(bundle=bundle, currency="USD", on=date(2026, 4, 1))
    assert march is not None
    assert march.amount == Decimal("15")
    assert april is not None
    assert april.amount == Decimal("17")
    assert selectors.meter_price_for(plan_meter=plan_meter, currency="USD") == first
    assert selectors.meter_price_for(plan_meter=plan_meter, currency="EUR") is None


# --- price list resolution ----------------------------------------------------------------------


@pytest.fixture
def lists(default_list: PriceList, geo_list: PriceList) -> dict[str, PriceList]:
    make = services.price_list_create
    return {
        "default": default_list,
        "europe": geo_list,
        "edu": make(code="edu", name="Education", kind="segment", segment="edu", actor=SYSTEM),
        "ngo": make(code="ngo", name="NGO", kind="segment", segment="ngo", actor=SYSTEM),
        "reseller": make(code="reseller", name="Reseller", kind="partner", actor=SYSTEM),
        "vip": make(code="vip", name="VIP", kind="partner", actor=SYSTEM),
    }


def test_price_list_resolution_order(lists: dict[str, PriceList]) -> None:
    def code(**kwargs: Any) -> str | None:
        found = selectors.price_list_for(**kwargs)
        return None if found is None else found.code

    everything = {
        "price_list_id": lists["vip"].pk,
        "partner_price_list_id": lists["reseller"].pk,
        "segments": ["ngo", "edu"],
        "country": "de",
    }
    assert code(**everything) == "vip"
    assert code(**everything | {"price_list_id": None}) == "reseller"
    assert code(**everything | {"price_list_id": None, "partner_price_list_id": None}) == "ngo"
    assert code(segments=["unknown", "edu"], country="DE") == "edu"
    assert code(segments=["unknown"], country="fr") == "europe"
    assert code(country="US") == "default"
    assert code() == "default"


def test_archived_lists_are_skipped(lists: dict[str, PriceList]) -> None:
    services.price_list_archive(price_list=lists["vip"], actor=SYSTEM)
    services.price_list_archive(price_list=lists["europe"], actor=SYSTEM)

    found = selectors.price_list_for(price_list_id=lists["vip"].pk, country="DE")

    assert found == lists["default"]


def test_no_price_list_at_all_gives_none(clock: Any) -> None:
    assert selectors.price_list_for(country="DE") is None


# --- tax rates ----------------------------------------------------------------------------------


def test_region_rate_wins_over_the_country_rate(clock: Any) -> None:
    country = services.tax_rate_create(name="US", country="US", percentage="0", actor=SYSTEM)
    california = services.tax_rate_create(
        name="CA", country="US", region="CA", percentage="7.25", actor=SYSTEM
    )
    services.tax_rate_create(
        name="NY old", country="US", region="NY", percentage="4", active=False, actor=SYSTEM
    )

    assert selectors.tax_rate_for(country="US", region="CA") == california
    assert selectors.tax_rate_for(country="us", region="us-ca") == california
    assert selectors.tax_rate_for(country="US", region="NY") == country
    assert selectors.tax_rate_for(country="US") == country
    assert selectors.tax_rate_for(country="DE") is None
    services.tax_rate_archive(tax_rate=california, actor=SYSTEM)
    assert selectors.tax_rate_for(country="US", region="CA") == country


# --- coupons ------------------------------------------------------------------------------------


def _coupon(**kwargs: Any) -> Coupon:
    fields: dict[str, Any] = {
        "code": "welcome",
        "name": "Welcome",
        "discount_type": "percent",
        "percent_off": 20,
        "duration": "once",
    } | kwargs
    return services.coupon_create(**fields, actor=SYSTEM)


def _refusal(**kwargs: Any) -> tuple[str, str | None]:
    with pytest.raises(ValidationError) as error:
        selectors.coupon_redeemable(**kwargs)
    return error.value.code, error.value.param


def test_a_valid_coupon_is_redeemable(plan: Plan) -> None:
    coupon = _coupon(plans=[plan])

    assert selectors.coupon_redeemable(coupon=coupon, plan=plan, currency="USD") == coupon


def test_expired_coupon(plan: Plan, clock: Any) -> None:
    coupon = _coupon(redeem_by=datetime(2026, 2, 1, tzinfo=UTC))

    assert selectors.coupon_redeemable(coupon=coupon, at=datetime(2026, 2, 1, tzinfo=UTC))
    clock(datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))
    assert _refusal(coupon=coupon, plan=plan) == ("coupon_expired", "coupon")


def test_archived_coupon_is_no_longer_redeemable(plan: Plan) -> None:
    coupon = _coupon()
    services.coupon_archive(coupon=coupon, actor=SYSTEM)

    assert _refusal(coupon=coupon, plan=plan) == ("coupon_expired", "coupon")


def test_exhausted_coupon(plan: Plan) -> None:
    coupon = _coupon(max_redemptions=2)
    services.coupon_redeem(coupon=coupon, plan=plan, actor=SYSTEM)
    services.coupon_redeem(coupon=coupon, plan=plan, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        services.coupon_redeem(coupon=coupon, plan=plan, actor=SYSTEM)

    assert error.value.code == "coupon_exhausted"
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 2
    assert _refusal(coupon=coupon) == ("coupon_exhausted", "coupon")
    assert AuditLog.objects.filter(action="coupon.redeem").count() == 2


def test_coupon_limited_to_other_plans_is_not_applicable(
    plan: Plan, make_plan: Callable[..., Plan]
) -> None:
    other = make_plan("other")
    coupon = _coupon(plans=[other])

    assert _refusal(coupon=coupon, plan=plan) == ("coupon_not_applicable", "coupon")
    assert selectors.coupon_redeemable(coupon=coupon, plan=other) == coupon


def test_fixed_coupon_without_an_amount_in_the_currency_is_not_applicable(plan: Plan) -> None:
    coupon = _coupon(
        discount_type="fixed", percent_off=None, amounts=[CouponAmountSpec("USD", Decimal("5"))]
    )

    assert _refusal(coupon=coupon, plan=plan, currency="EUR") == (
        "coupon_not_applicable",
        "coupon",
    )
    assert selectors.coupon_redeemable(coupon=coupon, plan=plan, currency="usd") == coupon


def test_promotion_code_limits(plan: Plan, clock: Any) -> None:
    coupon = _coupon()
    promo = services.promotion_code_create(
        coupon=coupon,
        code="first10",
        max_redemptions=1,
        expires_at=datetime(2026, 3, 1, tzinfo=UTC),
        first_time_only=True,
        actor=SYSTEM,
    )

    assert _refusal(promotion_code=promo, first_time_customer=False) == (
        "coupon_not_applicable",
        "promotion_code",
    )
    assert _refusal(promotion_code=promo, at=datetime(2026, 3, 1, tzinfo=UTC)) == (
        "coupon_expired",
        "promotion_code",
    )
    services.coupon_redeem(promotion_code=promo, plan=plan, actor=SYSTEM)
    promo.refresh_from_db()
    assert _refusal(promotion_code=promo) == ("coupon_exhausted", "promotion_code")
    coupon.refresh_from_db()
    assert (coupon.times_redeemed, promo.times_redeemed) == (1, 1)
    services.promotion_code_archive(promotion_code=promo, actor=SYSTEM)
    assert _refusal(promotion_code=promo) == ("coupon_expired", "promotion_code")


def test_promotion_code_lookup_ignores_case(clock: Any) -> None:
    promo = services.promotion_code_create(coupon=_coupon(), code="SPRING25", actor=SYSTEM)

    found = selectors.promotion_code_lookup(code=" spring25 ")

    assert found == promo
    assert isinstance(found, PromotionCode)
    assert found.coupon.code == "welcome"
    assert selectors.promotion_code_lookup(code="SUMMER") is None
