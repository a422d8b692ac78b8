"""The usage API: recording events (201, then 200 for the same event), listing, the summary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from rest_framework.test import APIClient

from catalog.models import Meter, PlanMeter
from core.actors import SYSTEM
from core.models import AuditLog
from customers.models import Customer
from customers.services import partner_create
from subscriptions.models import Subscription, UsageEvent
from subscriptions.usage import usage_event_record
from tests.subscriptions.usage_support import (
    FEB_1,
    Catalog,
    MeteredCharge,
    at,
    make_customer,
    make_subscription,
    tiers,
)

pytestmark = pytest.mark.django_db


class Shop:
    def __init__(self) -> None:
        self.catalog = Catalog()
        self.calls = self.catalog.meter("calls", Meter.Aggregation.COUNT, name="API calls")
        self.tokens = self.catalog.meter("tokens", Meter.Aggregation.SUM, "tokens", name="Tokens")
        self.plan = self.catalog.plan(
            "api",
            charges=[
                MeteredCharge(
                    self.calls,
                    PlanMeter.Pricing.GRADUATED,
                    [("USD", tiers(("100", "0.10"), ("1000", "0.08"), (None, "0.05")))],
                ),
                MeteredCharge(
                    self.tokens, PlanMeter.Pricing.UNIT, [("USD", tiers((None, "0.0025")))]
                ),
            ],
        )
        self.partner = partner_create(code="acme", name="Acme", actor=SYSTEM)
        self.customer = make_customer(external_id="cus-ann")
        self.subscription = make_subscription(self.customer, self.plan)
        self.partner_customer = make_customer(external_id="cus-acme", partner=self.partner)
        self.partner_subscription = make_subscription(self.partner_customer, self.plan)


@pytest.fixture
def shop(clock: Any) -> Shop:
    return Shop()


def _event_body(customer: Customer, **overrides: Any) -> dict[str, Any]:
    return {
        "customer": customer.pk,
        "meter": "tokens",
        "event_id": "evt-1",
        "occurred_at": "2026-01-10T09:30:00Z",
        "properties": {"tokens": "1200", "model": "large"},
    } | overrides


def _post(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/usage_events", body, format="json")


# --- recording ----------------------------------------------------------------------------------


def test_recording_an_event_answers_201_then_200_with_the_same_body(
    api: APIClient, shop: Shop
) -> None:
    first = _post(api, _event_body(shop.customer))
    again = _post(api, _event_body(shop.customer))

    assert first.status_code == 201, first.json()
    event = UsageEvent.objects.get()
    assert first.json() == {
        "id": event.pk,
        "event_id": "evt-1",
        "customer": shop.customer.pk,
        "customer_external_id": "cus-ann",
        "subscription": shop.subscription.pk,
        "meter": "tokens",
        "occurred_at": "2026-01-10T09:30:00Z",
        "properties": {"tokens": "1200", "model": "large"},
        "created_at": "2026-01-15T12:00:00Z",
    }
    assert again.status_code == 200
    assert again.json() == first.json()
    assert UsageEvent.objects.count() == 1


def test_a_customer_can_be_named_by_external_id(api: APIClient, shop: Shop) -> None:
    body = _event_body(shop.customer)
    del body["customer"]

    response = _post(api, body | {"customer_external_id": "cus-ann"})

    assert response.status_code == 201, response.json()
    assert response.json()["customer"] == shop.customer.pk


def test_the_same_id_with_other_values_is_409(api: APIClient, shop: Shop) -> None:
    _post(api, _event_body(shop.customer))

    response = _post(api, _event_body(shop.customer, properties={"tokens": "1300"}))

    assert response.status_code == 409
    assert response.json()["error"]["type"] == "conflict_error"
    assert response.json()["error"]["code"] == "usage_event_conflict"
    assert response.json()["error"]["param"] == "properties"
    assert UsageEvent.objects.get().properties == {"tokens": "1200", "model": "large"}


def test_occurred_at_defaults_to_now(api: APIClient, shop: Shop) -> None:
    body = _event_body(shop.customer)
    del body["occurred_at"]

    response = _post(api, body)

    assert response.status_code == 201
    assert response.json()["occurred_at"] == "2026-01-15T12:00:00Z"


@pytest.mark.parametrize(
    ("overrides", "status", "code", "param"),
    [
        ({"properties": {"tokens": 12.5}}, 400, "invalid_properties", "properties.tokens"),
        ({"properties": {"tokens": "lots"}}, 400, "invalid_usage_value", "properties.tokens"),
        ({"properties": "tokens"}, 400, "invalid_properties", "properties"),
        ({"meter": "bandwidth"}, 400, "meter_not_found", "meter"),
        ({"event_id": ""}, 400, "invalid_event_id", "event_id"),
        ({"occurred_at": "2026-01-16T00:00:00Z"}, 400, "usage_in_future", "occurred_at"),
        ({"occurred_at": "2025-12-31T23:00:00Z"}, 400, "no_metered_subscription", "meter"),
        ({"occurred_at": "yesterday"}, 400, "invalid", "occurred_at"),
        ({"customer": 999999}, 404, "customer_not_found", "id"),
        ({"subscription": 999999}, 404, "subscription_not_found", "subscription"),
    ],
)
def test_bad_events_are_refused_with_a_clear_error(
    api: APIClient,
    shop: Shop,
    overrides: dict[str, Any],
    status: int,
    code: str,
    param: str,
) -> None:
    response = _post(api, _event_body(shop.customer) | overrides)

    assert response.status_code == status, response.json()
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)
    assert not UsageEvent.objects.exists()
    assert not AuditLog.objects.filter(action="usage_event.record").exists()


@pytest.mark.parametrize(
    "identity",
    [{}, {"customer": 1, "customer_external_id": "cus-ann"}],
    ids=["neither", "both"],
)
def test_exactly_one_customer_reference_is_needed(
    api: APIClient, shop: Shop, identity: dict[str, Any]
) -> None:
    body = _event_body(shop.customer)
    del body["customer"]

    response = _post(api, body | identity)

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "customer_required",
        "customer",
    )


def test_a_closed_period_is_refused(api: APIClient, shop: Shop) -> None:
    Subscription.objects.filter(pk=shop.subscription.pk).update(
        usage_billed_through=date(2026, 1, 11)
    )

    response = _post(api, _event_body(shop.customer))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "usage_period_closed"


def test_the_event_is_audited_with_the_api_key(api: APIClient, shop: Shop) -> None:
    _post(api, _event_body(shop.customer))

    entry = AuditLog.objects.get(action="usage_event.record")
    assert entry.actor_type == AuditLog.ActorType.API_KEY
    assert entry.object_id == str(UsageEvent.objects.get().pk)


# --- partners -----------------------------------------------------------------------------------


@pytest.fixture
def partner_api(api_client_for: Callable[..., APIClient], shop: Shop) -> APIClient:
    return api_client_for(scopes=["read", "write"], partner=shop.partner)


def test_a_partner_records_usage_of_its_own_customers(partner_api: APIClient, shop: Shop) -> None:
    response = _post(partner_api, _event_body(shop.partner_customer))

    assert response.status_code == 201, response.json()
    assert response.json()["subscription"] == shop.partner_subscription.pk


@pytest.mark.parametrize("by", ["id", "external_id", "subscription"])
def test_a_partner_cannot_touch_another_customer(
    partner_api: APIClient, shop: Shop, by: str
) -> None:
    body = _event_body(shop.customer)
    if by == "external_id":
        del body["customer"]
        body["customer_external_id"] = "cus-ann"
    if by == "subscription":
        body = _event_body(shop.partner_customer, subscription=shop.subscription.pk)

    response = _post(partner_api, body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] in {"customer_not_found", "subscription_not_found"}
    assert not UsageEvent.objects.exists()


def test_a_partner_lists_only_its_customers_usage(
    api: APIClient, partner_api: APIClient, shop: Shop
) -> None:
    _post(api, _event_body(shop.customer))
    _post(api, _event_body(shop.partner_customer))

    listed = partner_api.get("/api/v1/usage_events").json()["results"]

    assert [event["customer"] for event in listed] == [shop.partner_customer.pk]


def test_a_read_key_cannot_record(api_client_for: Callable[..., APIClient], shop: Shop) -> None:
    response = _post(api_client_for(scopes=["read"]), _event_body(shop.customer))

    assert response.status_code == 403
    assert not UsageEvent.objects.exists()


# --- listing ------------------------------------------------------------------------------------


@pytest.fixture
def recorded(shop: Shop) -> dict[str, UsageEvent]:
    other = make_customer(external_id="cus-bob")
    other_subscription = make_subscription(other, shop.plan)

    def record(name: str, customer: Customer, meter: str, moment: Any, **props: Any) -> None:
        events[name], _ = usage_event_record(
            customer=customer,
            meter_code=meter,
            event_id=name,
            occurred_at=moment,
            properties=props,
            actor=SYSTEM,
        )

    events: dict[str, UsageEvent] = {}
    record("a", shop.customer, "calls", at(date(2026, 1, 2)))
    record("b", shop.customer, "tokens", at(date(2026, 1, 5)), tokens=3)
    record("c", other, "calls", at(date(2026, 1, 9)))
    record("d", shop.customer, "calls", at(date(2026, 1, 10)))
    assert events["c"].subscription == other_subscription
    return events


def _listed(client: APIClient, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/usage_events{query}")
    assert response.status_code == 200, response.json()
    return [event["event_id"] for event in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["d", "c", "b", "a"]),  # newest first
        ("?meter=calls", ["d", "c", "a"]),
        ("?customer_external_id=cus-bob", ["c"]),
        ("?occurred_after=2026-01-05T00:00:00Z", ["d", "c", "b"]),  # inclusive
        ("?occurred_before=2026-01-09T00:00:00Z", ["b", "a"]),  # exclusive
        ("?occurred_after=2026-01-02T00:00:01Z&occurred_before=2026-01-10T00:00:00Z", ["c", "b"]),
    ],
)
def test_the_list_filters(
    api: APIClient, shop: Shop, recorded: dict[str, UsageEvent], query: str, expected: list[str]
) -> None:
    assert _listed(api, query) == expected


def test_the_list_filters_by_customer_and_subscription(
    api: APIClient, shop: Shop, recorded: dict[str, UsageEvent]
) -> None:
    assert _listed(api, f"?customer={shop.customer.pk}") == ["d", "b", "a"]
    assert _listed(api, f"?subscription={recorded['c'].subscription_id}") == ["c"]


def test_the_list_refuses_a_malformed_filter(api: APIClient, shop: Shop) -> None:
    response = api.get("/api/v1/usage_events?occurred_after=soon")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "occurred_after"


# --- summary ------------------------------------------------------------------------------------


def test_the_usage_summary_of_the_current_period(
    api: APIClient, shop: Shop, recorded: dict[str, UsageEvent]
) -> None:
    response = api.get(f"/api/v1/usage_summary?subscription={shop.subscription.pk}")

    assert response.status_code == 200, response.json()
    assert response.json() == {
        "subscription": shop.subscription.pk,
        "customer": shop.customer.pk,
        "currency": "USD",
        "period_start": "2026-01-01",
        "period_end": "2026-02-01",
        "meters": [
            {
                "meter": "calls",
                "name": "API calls",
                "unit_label": "unit",
                "aggregation": "count",
                "pricing": "graduated",
                "quantity": "2",
                "amount_unrounded": "0.20",
                "amount": "0.20",
            },
            {
                "meter": "tokens",
                "name": "Tokens",
                "unit_label": "unit",
                "aggregation": "sum",
                "pricing": "unit",
                "quantity": "3",
                "amount_unrounded": "0.0075",
                "amount": "0.01",
            },
        ],
        "total": "0.21",
    }


def test_the_usage_summary_of_a_given_period(
    api: APIClient, shop: Shop, recorded: dict[str, UsageEvent]
) -> None:
    response = api.get(
        f"/api/v1/usage_summary?subscription={shop.subscription.pk}"
        "&period_start=2026-01-03&period_end=2026-01-11"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["period_start"], body["period_end"]) == ("2026-01-03", "2026-01-11")
    assert [m["quantity"] for m in body["meters"]] == ["1", "3"]


def test_the_usage_summary_needs_both_period_ends(api: APIClient, shop: Shop) -> None:
    response = api.get(
        f"/api/v1/usage_summary?subscription={shop.subscription.pk}&period_start=2026-01-03"
    )

    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "invalid_period",
        "period_end",
    )


def test_the_usage_summary_needs_a_subscription(api: APIClient, shop: Shop) -> None:
    response = api.get("/api/v1/usage_summary")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "subscription"


def test_a_partner_cannot_read_another_customers_usage_summary(
    partner_api: APIClient, shop: Shop
) -> None:
    theirs = partner_api.get(f"/api/v1/usage_summary?subscription={shop.subscription.pk}")
    own = partner_api.get(f"/api/v1/usage_summary?subscription={shop.partner_subscription.pk}")

    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "subscription_not_found"
    assert own.status_code == 200
    assert own.json()["period_end"] == FEB_1.isoformat()


def test_posting_to_the_summary_is_not_allowed(api: APIClient, shop: Shop) -> None:
    response = api.post("/api/v1/usage_summary", {}, format="json")

    assert response.status_code == 405
