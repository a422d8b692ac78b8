"""The catalog's Django admin: pages load, saves are audited and stamped from the platform
clock, the forms apply the services' rules, archiving is an action, and deleting anything in
use is refused with the admin's own message (never a 500).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from catalog import services
from catalog.models import (
    Bundle,
    Coupon,
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
from core.models import AuditLog

pytestmark = pytest.mark.django_db

CATALOG_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "catalog"),
    key=lambda model: model._meta.model_name or "",
)


@pytest.fixture
def staff(clock: Any) -> User:
    return User.objects.create_superuser("olivia", "olivia@example.com", "not-used")


@pytest.fixture
def browser(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:catalog_{model._meta.model_name}_{view}", args=args)


def _inline(prefix: str, rows: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{key}": value for key, value in row.items()})
    return data


@pytest.fixture
def catalog_objects(make_plan: Callable[..., Plan], api_calls_meter: Meter) -> dict[str, Model]:
    """One saved object of every catalog model, built through the services."""
    plan = make_plan(
        phases=[
            PhaseSpec(kind="trial", duration_unit="day", duration_count=14),
            PhaseSpec(kind="evergreen", prices=[PriceSpec("USD", Decimal("9.99"))]),
        ],
        features=[services.feature_create(code="hd", name="HD", actor=SYSTEM)],
    )
    other = make_plan("print")
    bundle = services.bundle_create(
        code="duo",
        name="Duo",
        pricing="fixed_price",
        components=[BundleComponentSpec(plan), BundleComponentSpec(other)],
        prices=[BundlePriceSpec("USD", Decimal("15"))],
        actor=SYSTEM,
    )
    coupon = services.coupon_create(
        code="welcome",
        name="Welcome",
        discount_type="fixed",
        duration="once",
        amounts=[CouponAmountSpec("USD", Decimal("5"))],
        actor=SYSTEM,
    )
    plan_meter = services.plan_meter_create(
        plan=plan, meter=api_calls_meter, pricing="unit", actor=SYSTEM
    )
    return {
        "feature": plan.features.get(),
        "product": plan.product,
        "plan": plan,
        "price": Price.objects.filter(phase__plan=plan).first(),  # type: ignore[dict-item]
        "pricelist": PriceList.objects.get(kind="default"),
        "bundle": bundle,
        "coupon": coupon,
        "promotioncode": services.promotion_code_create(coupon=coupon, code="HELLO", actor=SYSTEM),
        "taxrate": services.tax_rate_create(
            name="VAT", country="DE", percentage="19", actor=SYSTEM
        ),
        "meter": api_calls_meter,
        "planmeter": plan_meter,
        "meterprice": services.meter_price_create(
            plan_meter=plan_meter,
            currency="USD",
            tiers=[TierSpec(up_to=None, unit_amount=Decimal("0.002"))],
            actor=SYSTEM,
        ),
    }


def test_every_catalog_model_is_in_the_admin() -> None:
    assert [model._meta.model_name for model in CATALOG_MODELS] == [
        "bundle",
        "coupon",
        "feature",
        "meter",
        "meterprice",
        "plan",
        "planmeter",
        "price",
        "pricelist",
        "product",
        "promotioncode",
        "taxrate",
    ]


@pytest.mark.parametrize("model", CATALOG_MODELS, ids=lambda model: model._meta.model_name)
def test_every_catalog_admin_page_loads(
    browser: Client, catalog_objects: dict[str, Model], model: type[Model]
) -> None:
    obj = catalog_objects[model._meta.model_name or ""]

    pages = {
        "changelist": browser.get(_url(model, "changelist")),
        "search": browser.get(_url(model, "changelist"), {"q": "a"}),
        "add": browser.get(_url(model, "add")),
        "change": browser.get(_url(model, "change", obj.pk)),
    }

    assert {name: page.status_code for name, page in pages.items()} == {
        "changelist": 200,
        "search": 200,
        "add": 200,
        "change": 200,
    }


def test_adding_a_product_stamps_the_clock_and_audits_the_user(
    browser: Client, staff: User, clock: Any
) -> None:
    clock(datetime(2026, 2, 2, 9, 30, tzinfo=UTC))

    response = browser.post(
        _url(Product, "add"),
        {
            "code": "magazine",
            "name": "Magazine",
            "kind": "base",
            "delivery": "physical",
            "metadata": "{}",
        },
    )

    assert response.status_code == 302
    product = Product.objects.get(code="magazine")
    assert product.created_at == datetime(2026, 2, 2, 9, 30, tzinfo=UTC)
    entry = AuditLog.objects.get(action="product.create")
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == (
        "user",
        str(staff.pk),
        "olivia",
    )


def _plan_form(product: Product, phases: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "product": str(product.pk),
        "code": "gold",
        "name": "Gold",
        "tier_rank": "3",
        "billing_interval": "month",
        "interval_count": "1",
        "min_quantity": "1",
        "metadata": "{}",
        **_inline("phases", phases),
        **_inline("meters", []),
    }


def test_adding_a_plan_with_its_phases(browser: Client, product: Product) -> None:
    response = browser.post(
        _url(Plan, "add"),
        _plan_form(
            product,
            [
                {"sequence": "1", "kind": "trial", "duration_unit": "day", "duration_count": "30"},
                {"sequence": "2", "kind": "evergreen", "duration_unit": "", "duration_count": ""},
            ],
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    plan = Plan.objects.get(code="gold")
    assert [(p.sequence, p.kind, p.duration_count) for p in plan.phases.all()] == [
        (1, "trial", 30),
        (2, "evergreen", None),
    ]
    assert AuditLog.objects.filter(action="plan.create").count() == 1
    assert AuditLog.objects.filter(action="planphase.create").count() == 2


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        (
            [
                {"sequence": "1", "kind": "evergreen", "duration_unit": "", "duration_count": ""},
                {"sequence": "2", "kind": "trial", "duration_unit": "day", "duration_count": "7"},
            ],
            "An evergreen or fixed-term phase ends the plan: only trial and discount phases "
            "come before it.",
        ),
        (
            [
                {
                    "sequence": "1",
                    "kind": "evergreen",
                    "duration_unit": "month",
                    "duration_count": "12",
                }
            ],
            "An evergreen phase runs until cancelled: it has no duration.",
        ),
        ([], "A plan needs at least its final (evergreen or fixed-term) phase."),
    ],
)
def test_a_plan_with_bad_phases_is_not_saved(
    browser: Client, product: Product, phases: list[dict[str, Any]], message: str
) -> None:
    response = browser.post(_url(Plan, "add"), _plan_form(product, phases))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Plan.objects.filter(code="gold").exists()
    assert not AuditLog.objects.filter(action="plan.create", actor_type="user").exists()


def test_phases_are_read_only_once_the_plan_exists(browser: Client, plan: Plan) -> None:
    phase = plan.phases.get()
    data = {
        "name": "Renamed",
        "tier_rank": "0",
        "min_quantity": "1",
        "metadata": "{}",
        **_inline("phases", [{"id": str(phase.pk), "plan": str(plan.pk), "kind": "trial"}], 1),
        **_inline("meters", []),
    }

    response = browser.post(_url(Plan, "change", plan.pk), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    plan.refresh_from_db()
    phase.refresh_from_db()
    assert (plan.name, plan.billing_interval, phase.kind) == ("Renamed", "month", "evergreen")


def test_adding_a_price_version_checks_the_currency_decimals(
    browser: Client, plan: Plan, clock: Any
) -> None:
    phase = plan.phases.get()
    form = {
        "phase": str(phase.pk),
        "currency": "jpy",
        "amount": "1500.5",
        "setup_fee": "0",
        "effective_from": "2026-02-01",
    }

    refused = browser.post(_url(Price, "add"), form)
    accepted = browser.post(_url(Price, "add"), form | {"amount": "1500"})

    assert refused.status_code == 200
    assert "JPY amounts here have 0 decimals at most" in refused.content.decode()
    assert accepted.status_code == 302
    price = Price.objects.get(currency="JPY")
    assert (price.amount, price.price_list.kind, str(price.effective_from)) == (
        Decimal("1500"),
        "default",
        "2026-02-01",
    )
    assert price.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert AuditLog.objects.filter(action="price.create", actor_type="user").count() == 1


def test_a_price_version_cannot_be_changed_in_the_admin(browser: Client, plan: Plan) -> None:
    price = Price.objects.get(phase__plan=plan)

    response = browser.post(
        _url(Price, "change", price.pk),
        {
            "phase": str(price.phase_id),
            "currency": "USD",
            "amount": "1.00",
            "setup_fee": "0",
            "effective_from": "2026-01-15",
        },
    )

    assert response.status_code == 403
    price.refresh_from_db()
    assert price.amount == Decimal("9.99")


def test_deleting_a_plan_in_use_shows_the_protected_page(
    browser: Client, catalog_objects: dict[str, Model]
) -> None:
    plan = catalog_objects["plan"]

    page = browser.get(_url(Plan, "delete", plan.pk))
    attempt = browser.post(_url(Plan, "delete", plan.pk), {"post": "yes"})

    assert page.status_code == attempt.status_code == 200
    text = attempt.content.decode()
    assert "would require deleting the following protected related objects" in text
    assert "Price in effect since 2026-01-15" in text
    assert "Bundle component" in text
    assert Plan.objects.filter(pk=plan.pk).exists()
    assert not AuditLog.objects.filter(action="plan.delete").exists()


def test_deleting_a_price_list_with_prices_shows_the_protected_page(
    browser: Client, plan: Plan, clock: Any
) -> None:
    partner_list = services.price_list_create(
        code="reseller", name="Reseller", kind="partner", actor=SYSTEM
    )
    services.price_create(
        phase=plan.phases.get(),
        currency="USD",
        amount=Decimal("8"),
        price_list=partner_list,
        actor=SYSTEM,
    )

    response = browser.post(_url(PriceList, "delete", partner_list.pk), {"post": "yes"})

    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert PriceList.objects.filter(pk=partner_list.pk).exists()


def test_bulk_deleting_plans_in_use_is_refused_too(
    browser: Client, catalog_objects: dict[str, Model]
) -> None:
    plan = catalog_objects["plan"]

    response = browser.post(
        _url(Plan, "changelist"),
        {"action": "delete_selected", "_selected_action": [str(plan.pk)], "post": "yes"},
    )

    assert response.status_code == 200
    assert "protected related objects" in response.content.decode()
    assert Plan.objects.filter(pk=plan.pk).exists()


def test_a_plan_nothing_uses_yet_can_be_deleted(
    browser: Client, make_plan: Callable[..., Plan]
) -> None:
    unused = make_plan("mistake", phases=[PhaseSpec(kind="evergreen")])

    response = browser.post(_url(Plan, "delete", unused.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Plan.objects.filter(pk=unused.pk).exists()
    assert not PlanPhase.objects.filter(plan_id=unused.pk).exists()
    assert AuditLog.objects.filter(action="plan.delete", object_id=str(unused.pk)).count() == 1


def test_archive_action_archives_through_the_service(
    browser: Client, make_plan: Callable[..., Plan], staff: User
) -> None:
    first, second = make_plan("first"), make_plan("second")

    response = browser.post(
        _url(Plan, "changelist"),
        {"action": "archive_selected", "_selected_action": [str(first.pk), str(second.pk)]},
    )

    assert response.status_code == 302
    assert Plan.objects.filter(archived_at__isnull=False).count() == 2
    entries = AuditLog.objects.filter(action="plan.archive")
    assert {(e.actor_type, e.actor_label) for e in entries} == {("user", "olivia")}
    assert entries.count() == 2


def test_archiving_the_default_price_list_is_refused_with_a_message(
    browser: Client, default_list: PriceList
) -> None:
    response = browser.post(
        _url(PriceList, "changelist"),
        {"action": "archive_selected", "_selected_action": [str(default_list.pk)]},
        follow=True,
    )

    assert "it cannot be archived" in response.content.decode()
    default_list.refresh_from_db()
    assert default_list.archived_at is None


def test_second_active_tax_rate_is_a_form_error(browser: Client, clock: Any) -> None:
    services.tax_rate_create(name="VAT", country="DE", percentage="19", actor=SYSTEM)

    response = browser.post(
        _url(TaxRate, "add"),
        {"name": "VAT 2", "country": "de", "region": "", "percentage": "16", "active": "on"},
    )
    bad_country = browser.post(
        _url(TaxRate, "add"), {"name": "X", "country": "XK", "region": "", "percentage": "5"}
    )

    assert response.status_code == 200
    assert "This place already has an active tax rate; deactivate it first." in (
        response.content.decode()
    )
    assert "is not an ISO 3166-1 alpha-2 country code" in bad_country.content.decode()
    assert TaxRate.objects.count() == 1


def test_tax_rate_region_is_normalized(browser: Client, clock: Any) -> None:
    response = browser.post(
        _url(TaxRate, "add"),
        {"name": "CA", "country": "us", "region": "us-ca", "percentage": "7.25", "active": "on"},
    )

    assert response.status_code == 302
    assert TaxRate.objects.values_list("country", "region").get() == ("US", "CA")


def _coupon_form(amounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "code": "ten-off",
        "name": "Ten off",
        "discount_type": "fixed",
        "duration": "forever",
        "metadata": "{}",
        **_inline("amounts", amounts),
        **_inline("promotion_codes", [{"code": "ten", "active": "on"}]),
    }


def test_coupon_with_amounts_and_a_promotion_code(browser: Client, clock: Any) -> None:
    refused = browser.post(
        _url(Coupon, "add"), _coupon_form([{"currency": "KWD", "amount_off": "1.2345"}])
    )
    accepted = browser.post(
        _url(Coupon, "add"), _coupon_form([{"currency": "kwd", "amount_off": "1.250"}])
    )

    assert refused.status_code == 200
    assert "KWD amounts here have 3 decimals at most" in refused.content.decode()
    assert accepted.status_code == 302, accepted.content.decode()[:3000]
    coupon = Coupon.objects.get()
    assert list(coupon.amounts.values_list("currency", "amount_off")) == [("KWD", Decimal("1.250"))]
    assert list(PromotionCode.objects.values_list("code", flat=True)) == ["TEN"]
    assert AuditLog.objects.filter(action="promotioncode.create", actor_type="user").count() == 1
    assert PromotionCode.objects.get().created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_bundle_components_on_different_intervals_are_refused(
    browser: Client, make_plan: Callable[..., Plan]
) -> None:
    monthly, yearly = make_plan("m"), make_plan("y", billing_interval="year")

    response = browser.post(
        _url(Bundle, "add"),
        {
            "code": "mixed",
            "name": "Mixed",
            "pricing": "percent_discount",
            "discount_percent": "10",
            **_inline(
                "components",
                [
                    {"plan": str(monthly.pk), "quantity": "1"},
                    {"plan": str(yearly.pk), "quantity": "1"},
                ],
            ),
            **_inline("prices", []),
            **_inline("prices-2", []),
        },
    )

    assert response.status_code == 200
    assert "All plans of a bundle bill on the same interval." in response.content.decode()
    assert not Bundle.objects.exists()


def test_metered_price_tiers_are_checked_against_the_pricing(
    browser: Client, plan_meter: PlanMeter, make_plan: Callable[..., Plan]
) -> None:
    per_unit = services.plan_meter_create(
        plan=make_plan("per-unit"), meter=plan_meter.meter, pricing="unit", actor=SYSTEM
    )
    form = {"currency": "USD", "effective_from": "2026-01-15"}
    two_tiers = _inline(
        "tiers",
        [
            {"up_to": "100", "unit_amount": "0.01", "flat_amount": "0"},
            {"up_to": "", "unit_amount": "0.001", "flat_amount": "5"},
        ],
    )
    same_limit = _inline(
        "tiers",
        [
            {"up_to": "100", "unit_amount": "0.01", "flat_amount": "0"},
            {"up_to": "100", "unit_amount": "0.005", "flat_amount": "0"},
            {"up_to": "", "unit_amount": "0.001", "flat_amount": "0"},
        ],
    )

    unit_refused = browser.post(
        _url(MeterPrice, "add"), form | two_tiers | {"plan_meter": str(per_unit.pk)}
    )
    duplicate_refused = browser.post(
        _url(MeterPrice, "add"), form | same_limit | {"plan_meter": str(plan_meter.pk)}
    )
    accepted = browser.post(
        _url(MeterPrice, "add"), form | two_tiers | {"plan_meter": str(plan_meter.pk)}
    )

    assert unit_refused.status_code == duplicate_refused.status_code == 200
    assert "Per-unit pricing has exactly one tier, without a limit" in (
        unit_refused.content.decode()
    )
    assert "Please correct the duplicate data for up_to." in duplicate_refused.content.decode()
    assert accepted.status_code == 302, accepted.content.decode()[:3000]
    price = MeterPrice.objects.get()
    assert price.plan_meter == plan_meter
    assert [(t.up_to, t.unit_amount, t.flat_amount) for t in price.tiers.all()] == [
        (Decimal("100"), Decimal("0.01"), Decimal("0")),
        (None, Decimal("0.001"), Decimal("5")),
    ]
    assert AuditLog.objects.filter(action="meterpricetier.create").count() == 2
