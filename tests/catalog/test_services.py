"""Catalog services: validation at the door (clear code and param, nothing written) and audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from catalog import services
from catalog.models import (
    Bundle,
    BundlePrice,
    Coupon,
    CouponAmount,
    Feature,
    Meter,
    MeterPrice,
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
from core.actors import SYSTEM
from core.errors import ConflictError, ValidationError
from core.models import AuditLog

pytestmark = pytest.mark.django_db


def _audit_actions(instance: Any) -> list[str]:
    return list(
        AuditLog.objects.filter(
            object_type=instance._meta.label_lower, object_id=str(instance.pk)
        ).values_list("action", flat=True)
    )


# --- products and features ----------------------------------------------------------------------


def test_product_create_normalizes_the_code_sets_created_at_and_audits(clock: Any) -> None:
    product = services.product_create(code=" Magazine ", name=" Monthly Magazine ", actor=SYSTEM)

    assert product.code == "magazine"
    assert product.name == "Monthly Magazine"
    assert product.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    entry = AuditLog.objects.get(action="product.create")
    assert entry.object_id == str(product.pk)
    assert entry.after is not None
    assert entry.after["code"] == "magazine"
    assert entry.before is None


def test_product_code_taken_is_a_conflict_and_writes_nothing(product: Product) -> None:
    with pytest.raises(ConflictError) as error:
        services.product_create(code="NEWS", name="Other", actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("code_taken", "code")
    assert Product.objects.count() == 1
    assert AuditLog.objects.filter(action="product.create").count() == 1


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"code": "has space"}, "invalid_code", "code"),
        ({"name": "  "}, "required", "name"),
        ({"kind": "service"}, "invalid_choice", "kind"),
        ({"metadata": ["not", "an", "object"]}, "invalid_metadata", "metadata"),
    ],
)
def test_product_create_refuses_bad_input(
    clock: Any, kwargs: dict[str, Any], code: str, param: str
) -> None:
    arguments: dict[str, Any] = {"code": "paper", "name": "Paper"} | kwargs

    with pytest.raises(ValidationError) as error:
        services.product_create(**arguments, actor=SYSTEM)

    assert (error.value.code, error.value.param) == (code, param)
    assert not Product.objects.exists()
    assert not AuditLog.objects.exists()


def test_product_update_records_before_and_after_and_skips_no_op(product: Product) -> None:
    services.product_update(product=product, name="Daily News+", actor=SYSTEM)
    services.product_update(product=product, name="Daily News+", actor=SYSTEM)

    product.refresh_from_db()
    assert product.name == "Daily News+"
    entries = AuditLog.objects.filter(action="product.update")
    assert entries.count() == 1
    entry = entries.get()
    assert entry.before is not None
    assert entry.before["name"] == "The Daily News"
    assert entry.after is not None
    assert entry.after["name"] == "Daily News+"


def test_archive_and_unarchive_are_idempotent_and_audited(product: Product, clock: Any) -> None:
    clock(datetime(2026, 2, 1, tzinfo=UTC))

    services.product_archive(product=product, actor=SYSTEM)
    services.product_archive(product=product, actor=SYSTEM)
    product.refresh_from_db()
    assert product.archived_at == datetime(2026, 2, 1, tzinfo=UTC)

    services.product_unarchive(product=product, actor=SYSTEM)
    product.refresh_from_db()
    assert product.archived_at is None
    assert _audit_actions(product) == ["product.unarchive", "product.archive", "product.create"]


def test_archived_feature_cannot_be_given_to_a_plan(make_plan: Callable[..., Plan]) -> None:
    feature = services.feature_create(code="hd", name="HD streaming", actor=SYSTEM)
    services.feature_archive(feature=feature, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        make_plan(features=[feature])

    assert (error.value.code, error.value.param) == ("feature_archived", "features[0]")
    assert not Plan.objects.exists()
    assert Feature.objects.get().archived_at is not None


# --- plans and phases ---------------------------------------------------------------------------


def test_plan_create_with_trial_discount_and_evergreen_phases(
    make_plan: Callable[..., Plan],
) -> None:
    plan = make_plan(
        "premium",
        phases=[
            PhaseSpec(kind="trial", duration_unit="day", duration_count=14),
            PhaseSpec(
                kind="discount",
                duration_unit="month",
                duration_count=3,
                prices=[PriceSpec(currency="usd", amount=Decimal("4.99"))],
            ),
            PhaseSpec(
                kind="evergreen",
                prices=[
                    PriceSpec(currency="USD", amount=Decimal("9.99"), setup_fee=Decimal("5")),
                    PriceSpec(currency="JPY", amount=Decimal("1500")),
                ],
            ),
        ],
    )

    phases = list(plan.phases.order_by("sequence"))
    assert [(p.sequence, p.kind, p.duration_count, p.duration_unit) for p in phases] == [
        (1, "trial", 14, "day"),
        (2, "discount", 3, "month"),
        (3, "evergreen", None, ""),
    ]
    prices = Price.objects.filter(phase__plan=plan).order_by("phase__sequence", "currency")
    assert [(p.phase.sequence, p.currency, p.amount, p.setup_fee) for p in prices] == [
        (2, "USD", Decimal("4.99"), Decimal("0")),
        (3, "JPY", Decimal("1500"), Decimal("0")),
        (3, "USD", Decimal("9.99"), Decimal("5")),
    ]
    assert {p.effective_from.isoformat() for p in prices} == {"2026-01-15"}
    assert AuditLog.objects.filter(action="plan.create").count() == 1
    assert AuditLog.objects.filter(action="planphase.create").count() == 3
    assert AuditLog.objects.filter(action="price.create").count() == 3


@pytest.mark.parametrize(
    ("phases", "code", "param"),
    [
        ([], "phases_required", "phases"),
        (
            [PhaseSpec(kind="trial", duration_unit="day", duration_count=7)],
            "final_phase_required",
            "phases[0].kind",
        ),
        (
            [PhaseSpec(kind="evergreen"), PhaseSpec(kind="evergreen")],
            "invalid_phase_order",
            "phases[0].kind",
        ),
        (
            [
                PhaseSpec(kind="discount", duration_unit="month", duration_count=1),
                PhaseSpec(kind="trial", duration_unit="day", duration_count=7),
                PhaseSpec(kind="evergreen"),
            ],
            "invalid_phase_order",
            "phases[1].kind",
        ),
        (
            [PhaseSpec(kind="evergreen", duration_unit="month", duration_count=12)],
            "duration_not_allowed",
            "phases[0].duration_count",
        ),
        (
            [PhaseSpec(kind="trial", duration_unit="day"), PhaseSpec(kind="evergreen")],
            "duration_required",
            "phases[0].duration_count",
        ),
        (
            [PhaseSpec(kind="fixed_term", duration_count=12)],
            "duration_required",
            "phases[0].duration_unit",
        ),
        (
            [
                PhaseSpec(kind="discount", duration_unit="month", duration_count=1, renews=True),
                PhaseSpec(kind="evergreen"),
            ],
            "renews_not_allowed",
            "phases[0].renews",
        ),
        ([PhaseSpec(kind="lifetime")], "invalid_choice", "phases[0].kind"),
    ],
)
def test_plan_phases_are_validated_and_nothing_is_written(
    make_plan: Callable[..., Plan], phases: list[PhaseSpec], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        make_plan(phases=phases)

    assert (error.value.code, error.value.param) == (code, param)
    assert not Plan.objects.exists()
    assert not PlanPhase.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="plan").exists()


def test_fixed_term_phase_may_renew(make_plan: Callable[..., Plan]) -> None:
    plan = make_plan(
        "annual-contract",
        billing_interval="year",
        phases=[PhaseSpec(kind="fixed_term", duration_unit="year", duration_count=1, renews=True)],
    )

    phase = plan.phases.get()
    assert (phase.kind, phase.duration_count, phase.duration_unit, phase.renews) == (
        "fixed_term",
        1,
        "year",
        True,
    )


def test_a_bad_price_inside_plan_create_rolls_the_whole_plan_back(
    make_plan: Callable[..., Plan],
) -> None:
    with pytest.raises(ValidationError) as error:
        make_plan(
            phases=[
                PhaseSpec(
                    kind="evergreen",
                    prices=[
                        PriceSpec(currency="USD", amount=Decimal("9.99")),
                        PriceSpec(currency="JPY", amount=Decimal("1500.5")),
                    ],
                )
            ]
        )

    assert (error.value.code, error.value.param) == (
        "invalid_amount",
        "phases[0].prices[1].amount",
    )
    assert not Plan.objects.exists()
    assert not Price.objects.exists()
    assert not AuditLog.objects.filter(action__in=["plan.create", "price.create"]).exists()


def test_plan_on_archived_product_is_refused(
    product: Product, make_plan: Callable[..., Plan]
) -> None:
    services.product_archive(product=product, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        make_plan()

    assert (error.value.code, error.value.param) == ("product_archived", "product")
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"billing_interval": "fortnight"}, "invalid_choice", "billing_interval"),
        ({"interval_count": 0}, "invalid", "interval_count"),
        ({"billing_day": 32}, "invalid_billing_day", "billing_day"),
        ({"billing_interval": "week", "billing_day": 1}, "invalid_billing_day", "billing_day"),
        ({"min_quantity": 5, "max_quantity": 2}, "invalid_quantity", "max_quantity"),
    ],
)
def test_plan_create_refuses_bad_plan_fields(
    make_plan: Callable[..., Plan], kwargs: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        make_plan(**kwargs)

    assert (error.value.code, error.value.param) == (code, param)
    assert not Plan.objects.exists()


def test_addons_must_be_addon_plans_on_the_same_interval(
    make_plan: Callable[..., Plan], addon_product: Product
) -> None:
    base = make_plan("base")
    yearly_addon = make_plan(
        "crosswords-yearly", billing_interval="year", for_product=addon_product
    )
    monthly_addon = make_plan("crosswords-monthly", for_product=addon_product)

    with pytest.raises(ValidationError) as not_addon:
        services.plan_update(plan=base, addons=[make_plan("other-base")], actor=SYSTEM)
    with pytest.raises(ValidationError) as mismatch:
        services.plan_update(plan=base, addons=[yearly_addon], actor=SYSTEM)
    services.plan_update(plan=base, addons=[monthly_addon], actor=SYSTEM)

    assert (not_addon.value.code, not_addon.value.param) == ("invalid_addon", "addons[0]")
    assert (mismatch.value.code, mismatch.value.param) == ("addon_interval_mismatch", "addons[0]")
    assert list(base.addons.values_list("code", flat=True)) == ["crosswords-monthly"]


def test_plan_update_changes_features_in_one_audit_entry(plan: Plan) -> None:
    hd = services.feature_create(code="hd", name="HD", actor=SYSTEM)

    services.plan_update(plan=plan, name="Digital", features=[hd], actor=SYSTEM)

    entry = AuditLog.objects.get(action="plan.update")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.before["features"]) == ("Digital Monthly", [])
    assert (entry.after["name"], entry.after["features"]) == ("Digital", [hd.pk])


def test_archived_plan_is_not_available_but_kept(
    make_plan: Callable[..., Plan], product: Product
) -> None:
    from catalog.selectors import plans_available

    kept = make_plan("kept")
    retired = make_plan("retired")

    services.plan_archive(plan=retired, actor=SYSTEM)

    assert [p.code for p in plans_available()] == ["kept"]
    assert Plan.objects.filter(code="retired", archived_at__isnull=False).exists()
    services.product_archive(product=product, actor=SYSTEM)
    assert list(plans_available()) == []
    assert kept.pk in Plan.objects.values_list("pk", flat=True)


# --- prices -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount", "code", "param"),
    [
        ("USD", Decimal("9.999"), "invalid_amount", "amount"),
        ("JPY", Decimal("1500.5"), "invalid_amount", "amount"),
        ("KWD", Decimal("1.2345"), "invalid_amount", "amount"),
        ("USD", Decimal("-1"), "invalid_amount", "amount"),
        ("USD", "abc", "invalid_amount", "amount"),
        ("ABC", Decimal("1"), "invalid_currency", "currency"),
        ("XXX", Decimal("1"), "invalid_currency", "currency"),
    ],
)
def test_price_create_refuses_bad_amounts_and_currencies(
    plan: Plan, currency: str, amount: Any, code: str, param: str
) -> None:
    phase = plan.phases.get()

    with pytest.raises(ValidationError) as error:
        services.price_create(phase=phase, currency=currency, amount=amount, actor=SYSTEM)

    assert (error.value.code, error.value.param) == (code, param)
    assert Price.objects.count() == 1


def test_price_create_accepts_each_currency_s_own_decimals(plan: Plan, clock: Any) -> None:
    phase = plan.phases.get()

    prices = [
        services.price_create(phase=phase, currency=c, amount=Decimal(a), actor=SYSTEM)
        for c, a in [("JPY", "1500"), ("KWD", "3.125"), ("EUR", "8.50")]
    ]

    assert [(p.currency, p.amount) for p in prices] == [
        ("JPY", Decimal("1500")),
        ("KWD", Decimal("3.125")),
        ("EUR", Decimal("8.50")),
    ]


def test_price_setup_fee_follows_the_currency_too(plan: Plan) -> None:
    with pytest.raises(ValidationError) as error:
        services.price_create(
            phase=plan.phases.get(),
            currency="JPY",
            amount=Decimal("1000"),
            setup_fee=Decimal("0.5"),
            actor=SYSTEM,
        )

    assert (error.value.code, error.value.param) == ("invalid_amount", "setup_fee")


def test_price_needs_a_default_list_when_none_is_given(product: Product, clock: Any) -> None:
    with pytest.raises(ValidationError) as error:
        services.plan_create(
            product=product,
            code="p",
            name="P",
            billing_interval="month",
            phases=[PhaseSpec(kind="evergreen", prices=[PriceSpec("USD", Decimal("1"))])],
            actor=SYSTEM,
        )

    assert (error.value.code, error.value.param) == (
        "no_default_price_list",
        "phases[0].prices[0].price_list",
    )
    assert not Plan.objects.exists()


def test_trial_phase_is_free(make_plan: Callable[..., Plan]) -> None:
    plan = make_plan(
        phases=[
            PhaseSpec(kind="trial", duration_unit="day", duration_count=7),
            PhaseSpec(kind="evergreen"),
        ]
    )
    trial = plan.phases.get(kind="trial")

    with pytest.raises(ValidationError) as error:
        services.price_create(phase=trial, currency="USD", amount=Decimal("1"), actor=SYSTEM)
    free = services.price_create(phase=trial, currency="USD", amount=Decimal("0"), actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("trial_not_free", "amount")
    assert free.amount == Decimal("0")


def test_price_on_an_archived_price_list_is_refused(plan: Plan, clock: Any) -> None:
    partner_list = services.price_list_create(
        code="reseller", name="Reseller", kind="partner", actor=SYSTEM
    )
    services.price_list_archive(price_list=partner_list, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        services.price_create(
            phase=plan.phases.get(),
            currency="USD",
            amount=Decimal("8"),
            price_list=partner_list,
            actor=SYSTEM,
        )

    assert (error.value.code, error.value.param) == ("price_list_archived", "price_list")


# --- price lists --------------------------------------------------------------------------------


def test_second_default_price_list_is_a_conflict(default_list: PriceList) -> None:
    with pytest.raises(ConflictError) as error:
        services.price_list_create(code="other", name="Other", kind="default", actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("default_price_list_exists", "kind")
    assert PriceList.objects.count() == 1


def test_default_price_list_cannot_be_archived(default_list: PriceList) -> None:
    with pytest.raises(ConflictError) as error:
        services.price_list_archive(price_list=default_list, actor=SYSTEM)

    assert error.value.code == "default_price_list"
    default_list.refresh_from_db()
    assert default_list.archived_at is None


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"kind": "geography"}, "countries_required", "countries"),
        ({"kind": "geography", "countries": ["DE", "XK"]}, "invalid_country", "countries[1]"),
        ({"kind": "geography", "countries": ["EU"]}, "invalid_country", "countries[0]"),
        ({"kind": "segment"}, "segment_required", "segment"),
        ({"kind": "partner", "countries": ["DE"]}, "countries_not_allowed", "countries"),
        (
            {"kind": "geography", "countries": ["DE"], "segment": "edu"},
            "segment_not_allowed",
            "segment",
        ),
    ],
)
def test_price_list_scope_matches_its_kind(
    clock: Any, kwargs: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        services.price_list_create(code="market", name="Market", **kwargs, actor=SYSTEM)

    assert (error.value.code, error.value.param) == (code, param)
    assert not PriceList.objects.exists()


def test_a_country_belongs_to_one_active_geography_list(clock: Any) -> None:
    europe = services.price_list_create(
        code="europe", name="Europe", kind="geography", countries=["de", "FR"], actor=SYSTEM
    )

    with pytest.raises(ConflictError) as error:
        services.price_list_create(
            code="dach", name="DACH", kind="geography", countries=["AT", "DE"], actor=SYSTEM
        )
    services.price_list_archive(price_list=europe, actor=SYSTEM)
    dach = services.price_list_create(
        code="dach", name="DACH", kind="geography", countries=["AT", "DE"], actor=SYSTEM
    )
    with pytest.raises(ConflictError) as back:
        services.price_list_unarchive(price_list=europe, actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("country_already_priced", "countries")
    assert europe.countries == ["DE", "FR"]
    assert dach.countries == ["AT", "DE"]
    assert back.value.code == "country_already_priced"
    europe.refresh_from_db()
    assert europe.archived_at is not None


# --- bundles ------------------------------------------------------------------------------------


def test_fixed_price_bundle_with_components_and_prices(make_plan: Callable[..., Plan]) -> None:
    print_plan, digital_plan = make_plan("print"), make_plan("digital")

    bundle = services.bundle_create(
        code="print-digital",
        name="Print + digital",
        pricing="fixed_price",
        components=[BundleComponentSpec(print_plan), BundleComponentSpec(digital_plan, 2)],
        prices=[BundlePriceSpec("USD", Decimal("14.99")), BundlePriceSpec("JPY", Decimal("2000"))],
        actor=SYSTEM,
    )

    assert sorted(bundle.components.values_list("plan__code", "quantity")) == [
        ("digital", 2),
        ("print", 1),
    ]
    assert sorted(bundle.prices.values_list("currency", "amount")) == [
        ("JPY", Decimal("2000")),
        ("USD", Decimal("14.99")),
    ]
    entry = AuditLog.objects.get(action="bundle.create")
    assert entry.after is not None
    assert entry.after["components"] == [
        {"plan": print_plan.pk, "quantity": 1},
        {"plan": digital_plan.pk, "quantity": 2},
    ]


def test_bundle_components_must_share_the_billing_interval(
    make_plan: Callable[..., Plan],
) -> None:
    monthly, yearly = make_plan("monthly"), make_plan("yearly", billing_interval="year")

    with pytest.raises(ValidationError) as error:
        services.bundle_create(
            code="mixed",
            name="Mixed",
            pricing="percent_discount",
            discount_percent=Decimal("10"),
            components=[BundleComponentSpec(monthly), BundleComponentSpec(yearly)],
            actor=SYSTEM,
        )

    assert (error.value.code, error.value.param) == ("bundle_interval_mismatch", "components")
    assert not Bundle.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"pricing": "fixed_price"}, "bundle_price_required", "prices"),
        (
            {
                "pricing": "fixed_price",
                "discount_percent": "10",
                "prices": [BundlePriceSpec("USD", Decimal("1"))],
            },
            "discount_not_allowed",
            "discount_percent",
        ),
        ({"pricing": "percent_discount"}, "discount_required", "discount_percent"),
        (
            {"pricing": "percent_discount", "discount_percent": "100.5"},
            "invalid_percent",
            "discount_percent",
        ),
        (
            {
                "pricing": "percent_discount",
                "discount_percent": "10",
                "prices": [BundlePriceSpec("USD", Decimal("1"))],
            },
            "bundle_prices_not_allowed",
            "prices",
        ),
        (
            {"pricing": "fixed_price", "prices": [BundlePriceSpec("JPY", Decimal("0.5"))]},
            "invalid_amount",
            "prices[0].amount",
        ),
    ],
)
def test_bundle_pricing_is_either_fixed_prices_or_a_percent(
    make_plan: Callable[..., Plan], kwargs: dict[str, Any], code: str, param: str
) -> None:
    a, b = make_plan("a"), make_plan("b")

    with pytest.raises(ValidationError) as error:
        services.bundle_create(
            code="duo",
            name="Duo",
            components=[BundleComponentSpec(a), BundleComponentSpec(b)],
            actor=SYSTEM,
            **kwargs,
        )

    assert (error.value.code, error.value.param) == (code, param)
    assert not Bundle.objects.exists()
    assert not BundlePrice.objects.exists()


def test_bundle_needs_two_distinct_active_plans(make_plan: Callable[..., Plan]) -> None:
    a, b = make_plan("a"), make_plan("b")
    services.plan_archive(plan=b, actor=SYSTEM)
    base: dict[str, Any] = {"code": "x", "name": "X", "pricing": "percent_discount"}

    with pytest.raises(ValidationError) as single:
        services.bundle_create(
            **base, discount_percent=5, components=[BundleComponentSpec(a)], actor=SYSTEM
        )
    with pytest.raises(ValidationError) as twice:
        services.bundle_create(
            **base,
            discount_percent=5,
            components=[BundleComponentSpec(a), BundleComponentSpec(a)],
            actor=SYSTEM,
        )
    with pytest.raises(ValidationError) as archived:
        services.bundle_create(
            **base,
            discount_percent=5,
            components=[BundleComponentSpec(a), BundleComponentSpec(b)],
            actor=SYSTEM,
        )

    assert (single.value.code, single.value.param) == ("bundle_components_required", "components")
    assert (twice.value.code, twice.value.param) == ("duplicate_component", "components[1].plan")
    assert (archived.value.code, archived.value.param) == ("plan_archived", "components[1].plan")


# --- coupons and promotion codes ----------------------------------------------------------------


def test_fixed_coupon_with_amounts_per_currency(plan: Plan) -> None:
    coupon = services.coupon_create(
        code="welcome",
        name="Welcome",
        discount_type="fixed",
        duration="repeating",
        duration_cycles=3,
        amounts=[CouponAmountSpec("USD", Decimal("5")), CouponAmountSpec("jpy", Decimal("500"))],
        max_redemptions=100,
        redeem_by=datetime(2026, 6, 1, tzinfo=UTC),
        plans=[plan],
        actor=SYSTEM,
    )

    assert sorted(coupon.amounts.values_list("currency", "amount_off")) == [
        ("JPY", Decimal("500")),
        ("USD", Decimal("5")),
    ]
    assert list(coupon.plans.all()) == [plan]
    entry = AuditLog.objects.get(action="coupon.create")
    assert entry.after is not None
    assert entry.after["amounts"] == {"USD": "5", "JPY": "500"}


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"discount_type": "percent", "duration": "once"}, "percent_required", "percent_off"),
        (
            {"discount_type": "percent", "duration": "once", "percent_off": "120"},
            "invalid_percent",
            "percent_off",
        ),
        (
            {"discount_type": "percent", "duration": "once", "percent_off": "0"},
            "invalid_percent",
            "percent_off",
        ),
        (
            {"discount_type": "percent", "duration": "repeating", "percent_off": "10"},
            "required",
            "duration_cycles",
        ),
        (
            {
                "discount_type": "percent",
                "duration": "forever",
                "percent_off": "10",
                "duration_cycles": 3,
            },
            "duration_cycles_not_allowed",
            "duration_cycles",
        ),
        ({"discount_type": "fixed", "duration": "once"}, "amounts_required", "amounts"),
        (
            {
                "discount_type": "fixed",
                "duration": "once",
                "amounts": [CouponAmountSpec("USD", Decimal("0"))],
            },
            "invalid_amount",
            "amounts[0].amount_off",
        ),
        (
            {
                "discount_type": "fixed",
                "duration": "once",
                "amounts": [
                    CouponAmountSpec("USD", Decimal("1")),
                    CouponAmountSpec("usd", Decimal("2")),
                ],
            },
            "duplicate_currency",
            "amounts[1].currency",
        ),
        (
            {
                "discount_type": "percent",
                "duration": "once",
                "percent_off": "10",
                "max_redemptions": 0,
            },
            "invalid_max_redemptions",
            "max_redemptions",
        ),
        (
            {
                "discount_type": "percent",
                "duration": "once",
                "percent_off": "10",
                "redeem_by": datetime(2026, 1, 1, tzinfo=UTC),
            },
            "in_the_past",
            "redeem_by",
        ),
    ],
)
def test_coupon_create_refuses_inconsistent_terms(
    clock: Any, kwargs: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        services.coupon_create(code="c", name="C", **kwargs, actor=SYSTEM)

    assert (error.value.code, error.value.param) == (code, param)
    assert not Coupon.objects.exists()
    assert not CouponAmount.objects.exists()


def test_promotion_code_is_uppercased_and_unique(clock: Any) -> None:
    coupon = services.coupon_create(
        code="spring",
        name="Spring",
        discount_type="percent",
        percent_off=25,
        duration="once",
        actor=SYSTEM,
    )

    code = services.promotion_code_create(coupon=coupon, code=" spring25 ", actor=SYSTEM)
    with pytest.raises(ConflictError) as taken:
        services.promotion_code_create(coupon=coupon, code="SPRING25", actor=SYSTEM)
    with pytest.raises(ValidationError) as bad:
        services.promotion_code_create(coupon=coupon, code="spring 25!", actor=SYSTEM)

    assert code.code == "SPRING25"
    assert (taken.value.code, taken.value.param) == ("code_taken", "code")
    assert (bad.value.code, bad.value.param) == ("invalid_code", "code")
    assert PromotionCode.objects.count() == 1


def test_promotion_code_of_an_archived_coupon_cannot_be_made_or_reactivated(clock: Any) -> None:
    coupon = services.coupon_create(
        code="spring",
        name="Spring",
        discount_type="percent",
        percent_off=25,
        duration="once",
        actor=SYSTEM,
    )
    promo = services.promotion_code_create(coupon=coupon, code="SPRING25", actor=SYSTEM)
    services.promotion_code_archive(promotion_code=promo, actor=SYSTEM)
    services.coupon_archive(coupon=coupon, actor=SYSTEM)

    with pytest.raises(ValidationError) as create:
        services.promotion_code_create(coupon=coupon, code="SPRING30", actor=SYSTEM)
    with pytest.raises(ValidationError) as reactivate:
        services.promotion_code_unarchive(promotion_code=promo, actor=SYSTEM)

    assert create.value.code == reactivate.value.code == "coupon_archived"
    promo.refresh_from_db()
    assert promo.active is False


def test_coupon_max_redemptions_cannot_go_below_those_already_made(plan: Plan, clock: Any) -> None:
    coupon = services.coupon_create(
        code="c",
        name="C",
        discount_type="percent",
        percent_off=10,
        duration="once",
        max_redemptions=5,
        actor=SYSTEM,
    )
    services.coupon_redeem(coupon=coupon, plan=plan, actor=SYSTEM)
    services.coupon_redeem(coupon=coupon, plan=plan, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        services.coupon_update(coupon=coupon, max_redemptions=1, actor=SYSTEM)
    services.coupon_update(coupon=coupon, max_redemptions=2, actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("invalid_max_redemptions", "max_redemptions")
    coupon.refresh_from_db()
    assert (coupon.times_redeemed, coupon.max_redemptions) == (2, 2)


# --- tax rates ----------------------------------------------------------------------------------


def test_tax_rate_country_and_region_are_normalized(clock: Any) -> None:
    rate = services.tax_rate_create(
        name="CA sales tax", country="us", region="us-ca", percentage="7.25", actor=SYSTEM
    )

    assert (rate.country, rate.region, rate.percentage) == ("US", "CA", Decimal("7.25"))


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"country": "XX"}, "invalid_country", "country"),
        ({"country": "USA"}, "invalid_country", "country"),
        ({"country": "EU"}, "invalid_country", "country"),
        ({"country": "US", "region": "CA-ON"}, "invalid_region", "region"),
        ({"country": "US", "region": "CALI"}, "invalid_region", "region"),
        ({"country": "US", "percentage": "100.01"}, "invalid_percent", "percentage"),
        ({"country": "US", "percentage": "-1"}, "invalid_percent", "percentage"),
        ({"country": "US", "percentage": "7.12345"}, "invalid_percent", "percentage"),
    ],
)
def test_tax_rate_create_refuses_bad_places_and_percentages(
    clock: Any, kwargs: dict[str, Any], code: str, param: str
) -> None:
    arguments: dict[str, Any] = {"name": "Tax", "percentage": "10"} | kwargs

    with pytest.raises(ValidationError) as error:
        services.tax_rate_create(**arguments, actor=SYSTEM)

    assert (error.value.code, error.value.param) == (code, param)
    assert not TaxRate.objects.exists()


def test_second_active_tax_rate_for_a_place_is_refused_with_a_clear_error(clock: Any) -> None:
    first = services.tax_rate_create(name="VAT", country="DE", percentage="19", actor=SYSTEM)

    with pytest.raises(ConflictError) as error:
        services.tax_rate_create(name="VAT new", country="DE", percentage="16", actor=SYSTEM)
    inactive = services.tax_rate_create(
        name="VAT new", country="DE", percentage="16", active=False, actor=SYSTEM
    )
    with pytest.raises(ConflictError) as activate:
        services.tax_rate_unarchive(tax_rate=inactive, actor=SYSTEM)
    services.tax_rate_archive(tax_rate=first, actor=SYSTEM)
    services.tax_rate_unarchive(tax_rate=inactive, actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("tax_rate_conflict", "country")
    assert error.value.message == (
        f"DE already has an active tax rate (VAT, 19.0000%, id {first.pk}); "
        "archive it before activating another."
    )
    assert activate.value.code == "tax_rate_conflict"
    assert list(TaxRate.objects.filter(active=True).values_list("name", flat=True)) == ["VAT new"]


# --- meters -------------------------------------------------------------------------------------


def test_meter_field_name_follows_the_aggregation(clock: Any) -> None:
    with pytest.raises(ValidationError) as missing:
        services.meter_create(code="storage", name="Storage", aggregation="max", actor=SYSTEM)
    with pytest.raises(ValidationError) as extra:
        services.meter_create(
            code="calls", name="Calls", aggregation="count", field_name="n", actor=SYSTEM
        )
    meter = services.meter_create(
        code="storage", name="Storage", aggregation="max", field_name="gigabytes", actor=SYSTEM
    )

    assert (missing.value.code, missing.value.param) == ("field_name_required", "field_name")
    assert (extra.value.code, extra.value.param) == ("field_name_not_allowed", "field_name")
    assert Meter.objects.get() == meter


def test_plan_meter_is_unique_per_plan_and_meter(plan_meter: PlanMeter) -> None:
    with pytest.raises(ConflictError) as error:
        services.plan_meter_create(
            plan=plan_meter.plan, meter=plan_meter.meter, pricing="unit", actor=SYSTEM
        )

    assert (error.value.code, error.value.param) == ("plan_meter_exists", "meter")
    assert PlanMeter.objects.count() == 1


def test_graduated_meter_price_with_ascending_tiers(plan_meter: PlanMeter) -> None:
    price = services.meter_price_create(
        plan_meter=plan_meter,
        currency="USD",
        tiers=[
            TierSpec(up_to=Decimal("1000"), unit_amount=Decimal("0")),
            TierSpec(up_to=Decimal("10000"), unit_amount=Decimal("0.0025")),
            TierSpec(up_to=None, unit_amount=Decimal("0.001"), flat_amount=Decimal("10")),
        ],
        actor=SYSTEM,
    )

    assert [(t.up_to, t.unit_amount, t.flat_amount) for t in price.tiers.all()] == [
        (Decimal("1000"), Decimal("0"), Decimal("0")),
        (Decimal("10000"), Decimal("0.0025"), Decimal("0")),
        (None, Decimal("0.001"), Decimal("10")),
    ]
    entry = AuditLog.objects.get(action="meterprice.create")
    assert entry.after is not None
    assert entry.after["tiers"][1] == {
        "up_to": "10000",
        "unit_amount": "0.0025",
        "flat_amount": "0",
    }


@pytest.mark.parametrize(
    ("pricing", "tiers", "code", "param"),
    [
        ("unit", [], "tiers_required", "tiers"),
        ("unit", [TierSpec(up_to=Decimal("10")), TierSpec(up_to=None)], "invalid_tiers", "tiers"),
        ("unit", [TierSpec(up_to=Decimal("10"))], "invalid_tiers", "tiers"),
        ("graduated", [TierSpec(up_to=Decimal("10"))], "invalid_tiers", "tiers[0].up_to"),
        (
            "volume",
            [TierSpec(up_to=Decimal("10")), TierSpec(up_to=Decimal("5")), TierSpec(up_to=None)],
            "invalid_tiers",
            "tiers[1].up_to",
        ),
        ("volume", [TierSpec(up_to=None), TierSpec(up_to=None)], "invalid_tiers", "tiers[0].up_to"),
        (
            "graduated",
            [TierSpec(up_to=Decimal("0")), TierSpec(up_to=None)],
            "invalid_tiers",
            "tiers[0].up_to",
        ),
        (
            "unit",
            [TierSpec(up_to=None, unit_amount=Decimal("0.00001"))],
            "invalid_amount",
            "tiers[0].unit_amount",
        ),
        (
            "unit",
            [TierSpec(up_to=None, flat_amount=Decimal("0.001"))],
            "invalid_amount",
            "tiers[0].flat_amount",
        ),
    ],
)
def test_meter_tiers_are_validated(
    plan: Plan, api_calls_meter: Meter, pricing: str, tiers: list[TierSpec], code: str, param: str
) -> None:
    plan_meter = services.plan_meter_create(
        plan=plan, meter=api_calls_meter, pricing=pricing, actor=SYSTEM
    )

    with pytest.raises(ValidationError) as error:
        services.meter_price_create(
            plan_meter=plan_meter, currency="USD", tiers=tiers, actor=SYSTEM
        )

    assert (error.value.code, error.value.param) == (code, param)
    assert not MeterPrice.objects.exists()


def test_a_plan_keeps_a_feature_archived_since_but_cannot_gain_one(plan: Plan) -> None:
    old = services.feature_create(code="sd", name="SD", actor=SYSTEM)
    new = services.feature_create(code="hd", name="HD", actor=SYSTEM)
    plan = services.plan_update(plan=plan, features=[old], actor=SYSTEM)
    services.feature_archive(feature=old, actor=SYSTEM)
    services.feature_archive(feature=new, actor=SYSTEM)

    with pytest.raises(ValidationError) as error:
        services.plan_update(plan=plan, features=[old, new], actor=SYSTEM)
    services.plan_update(plan=plan, name="Kept", features=[old], actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("feature_archived", "features[1]")
    assert list(plan.features.values_list("code", flat=True)) == ["sd"]


def test_a_coupon_keeps_a_plan_archived_since(make_plan: Callable[..., Plan]) -> None:
    kept, other = make_plan("kept"), make_plan("other")
    coupon = services.coupon_create(
        code="c",
        name="C",
        discount_type="percent",
        percent_off=5,
        duration="once",
        plans=[kept],
        actor=SYSTEM,
    )
    services.plan_archive(plan=kept, actor=SYSTEM)
    services.plan_archive(plan=other, actor=SYSTEM)

    services.coupon_update(coupon=coupon, plans=[kept], name="Still", actor=SYSTEM)
    with pytest.raises(ValidationError) as error:
        services.coupon_update(coupon=coupon, plans=[kept, other], actor=SYSTEM)

    assert (error.value.code, error.value.param) == ("plan_archived", "plans[1]")
    assert list(coupon.plans.values_list("code", flat=True)) == ["kept"]
