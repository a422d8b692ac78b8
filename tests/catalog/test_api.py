"""The catalog over the REST API: create, list, retrieve, update and archive each resource;
amounts as strings with their currency's decimals; partner keys read only; nothing deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from catalog import services
from catalog.models import Plan, Price, PriceList, Product, PromotionCode, TaxRate
from core.actors import SYSTEM
from core.models import AuditLog
from customers.models import Partner
from customers.services import partner_create

pytestmark = pytest.mark.django_db

NOW = "2026-01-15T12:00:00Z"


def _error(response: Any) -> tuple[int, str, str, str | None]:
    body = response.json()["error"]
    return response.status_code, body["type"], body["code"], body["param"]


@pytest.fixture
def partner_client(api_client_for: Callable[..., APIClient], clock: Any) -> APIClient:
    partner: Partner = partner_create(code="acme", name="Acme", actor=SYSTEM)
    return api_client_for(scopes=["write"], partner=partner)


@pytest.fixture
def news(api: APIClient) -> dict[str, Any]:
    response = api.post("/api/v1/products", {"code": "news", "name": "News"}, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def _create_plan(api: APIClient, **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "product": "news",
        "code": "digital",
        "name": "Digital",
        "billing_interval": "month",
        "phases": [
            {"kind": "trial", "duration_unit": "day", "duration_count": 14},
            {
                "kind": "evergreen",
                "prices": [
                    {"currency": "USD", "amount": "9.99"},
                    {"currency": "JPY", "amount": "1500", "setup_fee": "500"},
                    {"currency": "KWD", "amount": "3.125"},
                ],
            },
        ],
    } | overrides
    return api.post("/api/v1/plans", body, format="json")


# --- products -----------------------------------------------------------------------------------


def test_product_create_retrieve_update_archive(api: APIClient, clock: Any) -> None:
    created = api.post(
        "/api/v1/products",
        {"code": "News", "name": "The News", "kind": "base", "metadata": {"team": "a"}},
        format="json",
    )

    assert created.status_code == 201
    product_id = created.json()["id"]
    assert created.json() == {
        "id": product_id,
        "code": "news",
        "name": "The News",
        "description": "",
        "kind": "base",
        "delivery": "digital",
        "metadata": {"team": "a"},
        "created_at": NOW,
        "archived_at": None,
    }
    updated = api.patch(f"/api/v1/products/{product_id}", {"name": "Daily News"}, format="json")
    assert updated.status_code == 200
    assert updated.json()["name"] == "Daily News"
    archived = api.post(f"/api/v1/products/{product_id}/archive")
    assert archived.status_code == 200
    assert archived.json()["archived_at"] == NOW
    assert api.get(f"/api/v1/products/{product_id}").json()["archived_at"] == NOW
    unarchived = api.post(f"/api/v1/products/{product_id}/unarchive")
    assert unarchived.json()["archived_at"] is None
    actions = AuditLog.objects.filter(object_type="catalog.product").values_list(
        "action", "actor_type"
    )
    assert sorted(actions) == [
        ("product.archive", "api_key"),
        ("product.create", "api_key"),
        ("product.unarchive", "api_key"),
        ("product.update", "api_key"),
    ]


def test_product_list_filters(api: APIClient, clock: Any) -> None:
    for code in ("news", "radio", "tv"):
        api.post("/api/v1/products", {"code": code, "name": code}, format="json")
    services.product_archive(product=Product.objects.get(code="radio"), actor=SYSTEM)

    def codes(query: str) -> list[str]:
        response = api.get(f"/api/v1/products{query}")
        assert response.status_code == 200
        return [item["code"] for item in response.json()["results"]]

    assert codes("") == ["tv", "radio", "news"]
    assert codes("?archived=false") == ["tv", "news"]
    assert codes("?archived=true") == ["radio"]
    assert codes("?code=tv") == ["tv"]


def test_duplicate_product_code_is_a_409(api: APIClient, news: dict[str, Any]) -> None:
    response = api.post("/api/v1/products", {"code": "news", "name": "Again"}, format="json")

    assert _error(response) == (409, "conflict_error", "code_taken", "code")
    assert Product.objects.count() == 1


def test_there_is_no_delete_or_put_only_archive(api: APIClient, news: dict[str, Any]) -> None:
    deleted = api.delete(f"/api/v1/products/{news['id']}")
    replaced = api.put(f"/api/v1/products/{news['id']}", {"name": "x"}, format="json")

    assert deleted.status_code == replaced.status_code == 405
    assert deleted.json()["error"]["code"] == "method_not_allowed"
    assert Product.objects.filter(pk=news["id"]).exists()


def test_an_unknown_id_is_a_404_in_the_error_shape(api: APIClient) -> None:
    response = api.get("/api/v1/plans/999999")

    assert _error(response) == (404, "invalid_request_error", "not_found", None)


# --- plans and prices ---------------------------------------------------------------------------


def test_plan_create_shows_phases_and_prices_in_each_currency_s_decimals(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    response = _create_plan(api)

    assert response.status_code == 201, response.json()
    body = response.json()
    trial, evergreen = body["phases"]
    assert (body["code"], body["product"], body["billing_interval"], body["interval_count"]) == (
        "digital",
        "news",
        "month",
        1,
    )
    assert {key: trial[key] for key in ("sequence", "kind", "duration_unit", "duration_count")} == {
        "sequence": 1,
        "kind": "trial",
        "duration_unit": "day",
        "duration_count": 14,
    }
    assert trial["prices"] == []
    assert (evergreen["kind"], evergreen["duration_unit"], evergreen["duration_count"]) == (
        "evergreen",
        None,
        None,
    )
    prices = {
        price["currency"]: (price["amount"], price["setup_fee"], price["price_list"])
        for price in evergreen["prices"]
    }
    assert prices == {
        "USD": ("9.99", "0.00", "default"),
        "JPY": ("1500", "500", "default"),
        "KWD": ("3.125", "0.000", "default"),
    }
    assert {price["effective_from"] for price in evergreen["prices"]} == {"2026-01-15"}


def test_a_jpy_price_with_decimals_is_a_400_and_no_plan_is_made(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    response = _create_plan(
        api,
        phases=[{"kind": "evergreen", "prices": [{"currency": "JPY", "amount": "1500.50"}]}],
    )

    assert _error(response) == (
        400,
        "invalid_request_error",
        "invalid_amount",
        "phases[0].prices[0].amount",
    )
    assert response.json()["error"]["message"] == (
        "JPY amounts here have 0 decimals at most (got 1500.50)."
    )
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("phases", "code", "param"),
    [
        ([], "phases_required", "phases"),
        (
            [{"kind": "evergreen", "duration_unit": "month", "duration_count": 1}],
            "duration_not_allowed",
            "phases[0].duration_count",
        ),
        (
            [
                {"kind": "evergreen"},
                {"kind": "discount", "duration_unit": "month", "duration_count": 3},
            ],
            "invalid_phase_order",
            "phases[0].kind",
        ),
        ([{"kind": "forever"}], "invalid_choice", "phases[0].kind"),
    ],
)
def test_bad_phases_are_a_400_with_code_and_param(
    api: APIClient, news: dict[str, Any], phases: list[dict[str, Any]], code: str, param: str
) -> None:
    response = _create_plan(api, phases=phases)

    assert _error(response) == (400, "invalid_request_error", code, param)
    assert not Plan.objects.exists()


def test_plan_references_are_codes_and_unknown_codes_are_400(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    response = _create_plan(api, product="nope")

    assert _error(response) == (400, "invalid_request_error", "does_not_exist", "product")


def test_plan_update_changes_mutable_fields_only(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    plan = _create_plan(api).json()
    api.post("/api/v1/features", {"code": "hd", "name": "HD"}, format="json")

    response = api.patch(
        f"/api/v1/plans/{plan['id']}",
        {"name": "Digital+", "features": ["hd"], "max_quantity": 5},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["name"], response.json()["features"]) == ("Digital+", ["hd"])
    assert response.json()["max_quantity"] == 5
    assert response.json()["phases"] == plan["phases"]


def test_plan_list_filters_and_archive(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    digital = _create_plan(api).json()
    _create_plan(api, code="yearly", billing_interval="year")

    archived = api.post(f"/api/v1/plans/{digital['id']}/archive")

    assert archived.status_code == 200
    assert archived.json()["archived_at"] == NOW

    def codes(query: str) -> list[str]:
        return [p["code"] for p in api.get(f"/api/v1/plans{query}").json()["results"]]

    assert codes("?archived=false") == ["yearly"]
    assert codes("?archived=true") == ["digital"]
    assert codes("?billing_interval=year") == ["yearly"]
    assert codes("?product=news") == ["yearly", "digital"]
    assert codes("?product=other") == []
    assert api.delete(f"/api/v1/plans/{digital['id']}").status_code == 405
    assert Plan.objects.count() == 2


def test_price_create_is_a_new_version_and_the_old_one_stays(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    old = Price.objects.get(currency="USD")

    response = api.post(
        "/api/v1/prices",
        {"plan": "digital", "currency": "usd", "amount": "12.50", "effective_from": "2026-03-01"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == {
        "id": body["id"],
        "plan": "digital",
        "phase": 2,
        "price_list": "default",
        "currency": "USD",
        "amount": "12.50",
        "setup_fee": "0.00",
        "effective_from": "2026-03-01",
        "created_at": NOW,
    }
    old.refresh_from_db()
    assert (old.amount, str(old.effective_from)) == (Decimal("9.99"), "2026-01-15")
    listed = api.get("/api/v1/prices?plan=digital&currency=usd").json()["results"]
    assert [(p["amount"], p["effective_from"]) for p in listed] == [
        ("12.50", "2026-03-01"),
        ("9.99", "2026-01-15"),
    ]
    assert api.get(f"/api/v1/prices/{body['id']}").json() == body


def test_price_versions_cannot_be_edited_or_deleted_through_the_api(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    price = Price.objects.get(currency="USD")

    patched = api.patch(f"/api/v1/prices/{price.pk}", {"amount": "1.00"}, format="json")
    deleted = api.delete(f"/api/v1/prices/{price.pk}")

    assert patched.status_code == deleted.status_code == 405
    price.refresh_from_db()
    assert price.amount == Decimal("9.99")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"currency": "JPY", "amount": "1600.5"}, (400, "invalid_amount", "amount")),
        ({"currency": "KWD", "amount": "3.1255"}, (400, "invalid_amount", "amount")),
        ({"currency": "USD", "amount": "9.999"}, (400, "invalid_amount", "amount")),
        ({"currency": "USD", "amount": 9.99}, (400, "invalid", "amount")),
        ({"currency": "USD", "amount": "-1"}, (400, "negative", "amount")),
        (
            {"currency": "EUR", "amount": "5", "setup_fee": "0.001"},
            (400, "invalid_amount", "setup_fee"),
        ),
        ({"currency": "usd", "amount": "9.99"}, (409, "price_version_exists", "effective_from")),
        (
            {"currency": "USD", "amount": "1", "effective_from": "2026-01-01"},
            (400, "effective_from_in_past", "effective_from"),
        ),
        ({"currency": "USD", "amount": "1", "phase": 9}, (400, "not_found", "phase")),
        (
            {"currency": "USD", "amount": "1", "price_list": "nope"},
            (400, "does_not_exist", "price_list"),
        ),
    ],
)
def test_price_create_refusals(
    api: APIClient,
    news: dict[str, Any],
    default_list: PriceList,
    body: dict[str, Any],
    expected: tuple[int, str, str],
) -> None:
    _create_plan(api)

    response = api.post("/api/v1/prices", {"plan": "digital"} | body, format="json")

    status, _, code, param = _error(response)
    assert (status, code, param) == expected
    assert Price.objects.count() == 3


# --- price lists and features -------------------------------------------------------------------


def test_price_lists(api: APIClient, default_list: PriceList) -> None:
    created = api.post(
        "/api/v1/price_lists",
        {"code": "europe", "name": "Europe", "kind": "geography", "countries": ["de", "FR"]},
        format="json",
    )
    overlapping = api.post(
        "/api/v1/price_lists",
        {"code": "dach", "name": "DACH", "kind": "geography", "countries": ["AT", "DE"]},
        format="json",
    )
    default_archive = api.post(f"/api/v1/price_lists/{default_list.pk}/archive")
    patched = api.patch(
        f"/api/v1/price_lists/{created.json()['id']}",
        {"countries": ["DE", "FR", "IT"]},
        format="json",
    )

    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("code", "kind", "countries", "segment")} == {
        "code": "europe",
        "kind": "geography",
        "countries": ["DE", "FR"],
        "segment": None,
    }
    assert _error(overlapping) == (409, "conflict_error", "country_already_priced", "countries")
    assert _error(default_archive) == (409, "conflict_error", "default_price_list", None)
    assert patched.json()["countries"] == ["DE", "FR", "IT"]
    by_country = api.get("/api/v1/price_lists?country=it").json()["results"]
    assert [item["code"] for item in by_country] == ["europe"]
    assert [
        item["code"] for item in api.get("/api/v1/price_lists?kind=default").json()["results"]
    ] == ["default"]


def test_features(api: APIClient, clock: Any) -> None:
    created = api.post(
        "/api/v1/features", {"code": "hd", "name": "HD", "description": "1080p"}, format="json"
    )
    feature_id = created.json()["id"]

    updated = api.patch(f"/api/v1/features/{feature_id}", {"name": "Full HD"}, format="json")
    archived = api.post(f"/api/v1/features/{feature_id}/archive")

    assert created.status_code == 201
    assert updated.json()["name"] == "Full HD"
    assert archived.json()["archived_at"] == NOW
    assert api.get("/api/v1/features?archived=false").json()["results"] == []
    assert [f["code"] for f in api.get("/api/v1/features?code=hd").json()["results"]] == ["hd"]


# --- bundles ------------------------------------------------------------------------------------


def test_bundles_with_fixed_prices_and_new_versions(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    _create_plan(api, code="print", name="Print")

    created = api.post(
        "/api/v1/bundles",
        {
            "code": "all-access",
            "name": "All access",
            "pricing": "fixed_price",
            "components": [{"plan": "digital"}, {"plan": "print", "quantity": 2}],
            "prices": [
                {"currency": "USD", "amount": "14.99"},
                {"currency": "JPY", "amount": "2000"},
            ],
        },
        format="json",
    )
    bundle_id = created.json()["id"]
    versioned = api.post(
        f"/api/v1/bundles/{bundle_id}/prices",
        {"currency": "USD", "amount": "15.99", "effective_from": "2026-02-01"},
        format="json",
    )

    assert created.status_code == 201, created.json()
    assert created.json()["components"] == [
        {"plan": "digital", "quantity": 1},
        {"plan": "print", "quantity": 2},
    ]
    assert created.json()["discount_percent"] is None
    assert versioned.status_code == 201, versioned.json()
    assert sorted(
        (p["currency"], p["amount"], p["effective_from"]) for p in versioned.json()["prices"]
    ) == [
        ("JPY", "2000", "2026-01-15"),
        ("USD", "14.99", "2026-01-15"),
        ("USD", "15.99", "2026-02-01"),
    ]
    assert [b["code"] for b in api.get("/api/v1/bundles?plan=print").json()["results"]] == [
        "all-access"
    ]


def test_bundle_of_plans_on_different_intervals_is_a_400(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    _create_plan(api, code="yearly", billing_interval="year")

    response = api.post(
        "/api/v1/bundles",
        {
            "code": "mixed",
            "name": "Mixed",
            "pricing": "percent_discount",
            "discount_percent": "10",
            "components": [{"plan": "digital"}, {"plan": "yearly"}],
        },
        format="json",
    )

    assert _error(response) == (
        400,
        "invalid_request_error",
        "bundle_interval_mismatch",
        "components",
    )


# --- coupons and promotion codes ----------------------------------------------------------------


def test_coupons_and_promotion_codes(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    percent = api.post(
        "/api/v1/coupons",
        {
            "code": "spring",
            "name": "Spring",
            "discount_type": "percent",
            "percent_off": "25",
            "duration": "repeating",
            "duration_cycles": 3,
            "plans": ["digital"],
        },
        format="json",
    )
    fixed = api.post(
        "/api/v1/coupons",
        {
            "code": "fiver",
            "name": "Five off",
            "discount_type": "fixed",
            "amounts": [
                {"currency": "USD", "amount_off": "5"},
                {"currency": "KWD", "amount_off": "1.5"},
            ],
            "duration": "once",
        },
        format="json",
    )
    promo = api.post(
        "/api/v1/promotion_codes",
        {"coupon": "spring", "code": "spring25", "max_redemptions": 100},
        format="json",
    )

    assert percent.status_code == fixed.status_code == promo.status_code == 201
    assert (percent.json()["percent_off"], percent.json()["amounts"], percent.json()["plans"]) == (
        "25",
        [],
        ["digital"],
    )
    assert sorted((a["currency"], a["amount_off"]) for a in fixed.json()["amounts"]) == [
        ("KWD", "1.500"),
        ("USD", "5.00"),
    ]
    assert {k: promo.json()[k] for k in ("code", "coupon", "active", "times_redeemed")} == {
        "code": "SPRING25",
        "coupon": "spring",
        "active": True,
        "times_redeemed": 0,
    }
    found = api.get("/api/v1/promotion_codes?code=spring25").json()["results"]
    assert [p["code"] for p in found] == ["SPRING25"]
    archived = api.post(f"/api/v1/promotion_codes/{promo.json()['id']}/archive")
    assert archived.json()["active"] is False
    assert PromotionCode.objects.get().active is False
    patched = api.patch(
        f"/api/v1/coupons/{percent.json()['id']}",
        {"max_redemptions": 10, "plans": []},
        format="json",
    )
    assert (patched.json()["max_redemptions"], patched.json()["plans"]) == (10, [])
    assert [
        c["code"] for c in api.get("/api/v1/coupons?discount_type=fixed").json()["results"]
    ] == ["fiver"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"discount_type": "percent", "percent_off": "120", "duration": "once"},
            "invalid_percent",
            "percent_off",
        ),
        (
            {"discount_type": "percent", "percent_off": "10", "duration": "repeating"},
            "required",
            "duration_cycles",
        ),
        (
            {
                "discount_type": "fixed",
                "duration": "once",
                "amounts": [{"currency": "JPY", "amount_off": "100.5"}],
            },
            "invalid_amount",
            "amounts[0].amount_off",
        ),
    ],
)
def test_coupon_refusals(
    api: APIClient, clock: Any, body: dict[str, Any], code: str, param: str
) -> None:
    response = api.post("/api/v1/coupons", {"code": "c", "name": "C"} | body, format="json")

    assert _error(response) == (400, "invalid_request_error", code, param)


# --- tax rates ----------------------------------------------------------------------------------


def test_tax_rates(api: APIClient, clock: Any) -> None:
    country = api.post(
        "/api/v1/tax_rates",
        {"name": "Sales tax", "country": "us", "percentage": "0"},
        format="json",
    )
    california = api.post(
        "/api/v1/tax_rates",
        {"name": "CA", "country": "US", "region": "US-CA", "percentage": "7.25"},
        format="json",
    )
    second = api.post(
        "/api/v1/tax_rates",
        {"name": "CA new", "country": "US", "region": "CA", "percentage": "7.5"},
        format="json",
    )

    assert country.status_code == california.status_code == 201
    assert {k: california.json()[k] for k in ("country", "region", "percentage", "active")} == {
        "country": "US",
        "region": "CA",
        "percentage": "7.25",
        "active": True,
    }
    assert country.json()["region"] is None
    assert _error(second) == (409, "conflict_error", "tax_rate_conflict", "region")
    assert TaxRate.objects.count() == 2
    archived = api.post(f"/api/v1/tax_rates/{california.json()['id']}/archive")
    assert archived.json()["active"] is False
    listed = api.get("/api/v1/tax_rates?country=us&active=true").json()["results"]
    assert [r["name"] for r in listed] == ["Sales tax"]
    inactive = api.get("/api/v1/tax_rates?archived=true").json()["results"]
    assert [r["name"] for r in inactive] == ["CA"]


# --- meters -------------------------------------------------------------------------------------


def test_meters_plan_meters_and_versioned_tiered_prices(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    _create_plan(api)
    meter = api.post(
        "/api/v1/meters",
        {
            "code": "storage",
            "name": "Storage",
            "aggregation": "max",
            "field_name": "gb",
            "unit_label": "GB",
        },
        format="json",
    )
    plan_meter = api.post(
        "/api/v1/plan_meters",
        {"plan": "digital", "meter": "storage", "pricing": "graduated"},
        format="json",
    )
    price = api.post(
        "/api/v1/meter_prices",
        {
            "plan_meter": plan_meter.json()["id"],
            "currency": "USD",
            "tiers": [
                {"up_to": "100", "unit_amount": "0"},
                {"up_to": "1000", "unit_amount": "0.0025"},
                {"up_to": None, "unit_amount": "0.001", "flat_amount": "10"},
            ],
        },
        format="json",
    )
    bad_tiers = api.post(
        "/api/v1/meter_prices",
        {
            "plan_meter": plan_meter.json()["id"],
            "currency": "USD",
            "effective_from": "2026-02-01",
            "tiers": [{"up_to": "100", "unit_amount": "0"}],
        },
        format="json",
    )

    assert meter.status_code == plan_meter.status_code == 201
    assert price.status_code == 201, price.json()
    assert price.json()["tiers"] == [
        {"up_to": "100", "unit_amount": "0.00", "flat_amount": "0.00"},
        {"up_to": "1000", "unit_amount": "0.0025", "flat_amount": "0.00"},
        {"up_to": None, "unit_amount": "0.001", "flat_amount": "10.00"},
    ]
    assert _error(bad_tiers) == (400, "invalid_request_error", "invalid_tiers", "tiers[0].up_to")
    shown = api.get(f"/api/v1/plan_meters/{plan_meter.json()['id']}").json()
    assert (shown["plan"], shown["meter"], shown["pricing"]) == ("digital", "storage", "graduated")
    assert [p["id"] for p in shown["prices"]] == [price.json()["id"]]
    renamed = api.patch(f"/api/v1/meters/{meter.json()['id']}", {"name": "Disk"}, format="json")
    assert renamed.json()["name"] == "Disk"
    assert (
        api.get("/api/v1/meter_prices?plan=digital&currency=usd").json()["results"][0]["id"]
        == price.json()["id"]
    )


# --- who may write ------------------------------------------------------------------------------


def test_a_partner_key_reads_the_catalog_but_cannot_change_it(
    api: APIClient, partner_client: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    plan = _create_plan(api).json()
    AuditLog.objects.all().delete()

    reads = [
        partner_client.get("/api/v1/plans"),
        partner_client.get(f"/api/v1/plans/{plan['id']}"),
        partner_client.get("/api/v1/prices"),
        partner_client.get("/api/v1/products"),
    ]
    writes = [
        partner_client.post("/api/v1/products", {"code": "x", "name": "X"}, format="json"),
        partner_client.patch(f"/api/v1/plans/{plan['id']}", {"name": "Mine"}, format="json"),
        partner_client.post(f"/api/v1/plans/{plan['id']}/archive"),
        partner_client.post(
            "/api/v1/prices", {"plan": "digital", "currency": "EUR", "amount": "1"}, format="json"
        ),
    ]

    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    assert reads[1].json()["phases"] == plan["phases"]
    assert [_error(r) for r in writes] == [(403, "permission_error", "permission_denied", None)] * 4
    assert writes[0].json()["error"]["message"] == "Partner API keys can only read this resource."
    assert not AuditLog.objects.exists()
    assert Plan.objects.get().name == "Digital"
    assert not Product.objects.filter(code="x").exists()


def test_a_read_key_cannot_write_the_catalog(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    reader = api_client_for(scopes=["read"])

    response = reader.post("/api/v1/products", {"code": "x", "name": "X"}, format="json")

    assert _error(response) == (403, "permission_error", "permission_denied", None)
    assert not Product.objects.exists()


def test_an_idempotent_retry_creates_one_plan(
    api: APIClient, news: dict[str, Any], default_list: PriceList
) -> None:
    body = {
        "product": "news",
        "code": "digital",
        "name": "Digital",
        "billing_interval": "month",
        "phases": [{"kind": "evergreen", "prices": [{"currency": "USD", "amount": "9.99"}]}],
    }

    first = api.post("/api/v1/plans", body, format="json", headers={"Idempotency-Key": "k1"})
    again = api.post("/api/v1/plans", body, format="json", headers={"Idempotency-Key": "k1"})

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Plan.objects.count() == 1
    assert Price.objects.count() == 1
