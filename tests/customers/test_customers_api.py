"""The customers API: create, read, change, list, interactions; the error shape; audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from api.models import ApiKey
from core.models import AuditLog
from customers.models import Customer, Interaction, Partner

pytestmark = pytest.mark.django_db


@pytest.fixture
def keyed(
    make_api_key: Callable[..., tuple[ApiKey, str]], clock: Any
) -> Callable[..., tuple[APIClient, ApiKey]]:
    def make(**kwargs: Any) -> tuple[APIClient, ApiKey]:
        key, plaintext = make_api_key(**kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client, key

    return make


def test_create_returns_the_customer_and_audits_with_the_request_id(
    keyed: Callable[..., tuple[APIClient, ApiKey]],
    make_partner: Callable[..., Partner],
    make_price_list: Callable[..., Any],
) -> None:
    client, key = keyed(scopes=["write"])
    make_partner("acme")
    make_price_list("eu-list")

    response = client.post(
        "/api/v1/customers",
        {
            "external_id": "crm-42",
            "email": "jane@Example.com",
            "name": "Jane Doe",
            "currency": "eur",
            "country": "fr",
            "region": "FR-75",
            "segments": ["VIP"],
            "partner": "acme",
            "price_list": "eu-list",
            "billing_day": 1,
            "autocharge": False,
            "metadata": {"crm": "hubspot"},
        },
        format="json",
        HTTP_X_REQUEST_ID="req-create-1",
    )

    assert response.status_code == 201, response.json()
    customer = Customer.objects.get()
    assert response.json() == {
        "id": customer.pk,
        "external_id": "crm-42",
        "email": "jane@example.com",
        "name": "Jane Doe",
        "currency": "EUR",
        "country": "FR",
        "region": "75",
        "postal_code": None,
        "tax_id": None,
        "segments": ["vip"],
        "acquisition_channel": "partner",
        "partner": "acme",
        "price_list": "eu-list",
        "billing_day": 1,
        "autocharge": False,
        "metadata": {"crm": "hubspot"},
        "created_at": "2026-01-15T12:00:00Z",
        "updated_at": "2026-01-15T12:00:00Z",
    }
    entry = AuditLog.objects.get(action="customer.create")
    assert entry.request_id == "req-create-1"
    assert entry.actor_type == "api_key"
    assert entry.actor_id == str(key.pk)
    assert entry.actor_label == str(key)
    assert entry.after is not None
    assert entry.after["external_id"] == "crm-42"


def test_a_minimal_customer_shows_empty_values_as_null(api: APIClient) -> None:
    response = api.post(
        "/api/v1/customers", {"email": "bob@example.com", "name": "Bob"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["external_id"].startswith("cus_")
    assert {k: body[k] for k in ("currency", "country", "region", "partner", "price_list")} == {
        "currency": None,
        "country": None,
        "region": None,
        "partner": None,
        "price_list": None,
    }
    assert (body["acquisition_channel"], body["autocharge"], body["billing_day"]) == (
        "organic",
        True,
        None,
    )


@pytest.mark.parametrize(
    ("payload", "status", "type_", "code", "param"),
    [
        ({"email": "nope"}, 400, "invalid_request_error", "invalid_email", "email"),
        ({"name": ""}, 400, "invalid_request_error", "blank", "name"),
        ({"currency": "EURO"}, 400, "invalid_request_error", "invalid_currency", "currency"),
        ({"country": "France"}, 400, "invalid_request_error", "invalid_country", "country"),
        ({"billing_day": 32}, 400, "invalid_request_error", "invalid_billing_day", "billing_day"),
        ({"metadata": [1]}, 400, "invalid_request_error", "invalid_metadata", "metadata"),
        ({"partner": "nope"}, 400, "invalid_request_error", "partner_not_found", "partner"),
        (
            {"price_list": "nope"},
            400,
            "invalid_request_error",
            "price_list_not_found",
            "price_list",
        ),
        (
            {"acquisition_channel": "tv"},
            400,
            "invalid_request_error",
            "invalid_choice",
            "acquisition_channel",
        ),
    ],
)
def test_bad_input_answers_the_error_shape_and_writes_nothing(
    api: APIClient,
    payload: dict[str, Any],
    status: int,
    type_: str,
    code: str,
    param: str,
) -> None:
    response = api.post(
        "/api/v1/customers",
        {"email": "ok@example.com", "name": "Ok", **payload},
        format="json",
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (type_, code, param)
    assert error["message"]
    assert Customer.objects.count() == 0
    assert not AuditLog.objects.filter(object_type="customers.customer").exists()


def test_an_archived_price_list_is_refused(
    api: APIClient, make_price_list: Callable[..., Any]
) -> None:
    make_price_list("old", archived=True)

    response = api.post(
        "/api/v1/customers",
        {"email": "ok@example.com", "name": "Ok", "price_list": "old"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "price_list_archived"
    assert Customer.objects.count() == 0


def test_a_duplicate_external_id_is_409(api: APIClient, make_customer: Callable[..., Any]) -> None:
    make_customer(external_id="crm-1")

    response = api.post(
        "/api/v1/customers",
        {"external_id": "crm-1", "email": "x@example.com", "name": "X"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "type": "conflict_error",
            "code": "customer_exists",
            "message": "A customer with external_id 'crm-1' already exists.",
            "param": "external_id",
        }
    }
    assert Customer.objects.count() == 1


def test_an_idempotent_retry_creates_one_customer(api: APIClient) -> None:
    body = {"email": "bob@example.com", "name": "Bob"}

    first = api.post("/api/v1/customers", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = api.post("/api/v1/customers", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Customer.objects.count() == 1


def test_retrieve_and_not_found(api: APIClient, make_customer: Callable[..., Any]) -> None:
    customer = make_customer(email="r@example.com")

    found = api.get(f"/api/v1/customers/{customer.pk}")
    missing = api.get(f"/api/v1/customers/{customer.pk + 1}")

    assert found.status_code == 200
    assert found.json()["email"] == "r@example.com"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "customer_not_found"
    assert api.get("/api/v1/customers/abc").status_code == 404


def test_patch_changes_the_given_fields(
    api: APIClient,
    clock: Callable[[datetime], Any],
    make_customer: Callable[..., Any],
    make_partner: Callable[..., Any],
) -> None:
    customer = make_customer(email="old@example.com", partner=make_partner("acme"))
    clock(datetime(2026, 3, 1, tzinfo=UTC))

    response = api.patch(
        f"/api/v1/customers/{customer.pk}",
        {"email": "new@example.com", "currency": "usd", "partner": None, "tax_id": ""},
        format="json",
        HTTP_X_REQUEST_ID="req-patch-1",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["email"], body["currency"], body["partner"], body["tax_id"]) == (
        "new@example.com",
        "USD",
        None,
        None,
    )
    assert body["name"] == customer.name
    assert body["updated_at"] == "2026-03-01T00:00:00Z"
    entry = AuditLog.objects.get(action="customer.update")
    assert entry.request_id == "req-patch-1"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["currency"], entry.after["currency"]) == ("", "USD")


def test_patching_a_set_currency_is_409_currency_locked(
    api: APIClient, make_customer: Callable[..., Any]
) -> None:
    customer = make_customer(currency="USD")

    response = api.patch(f"/api/v1/customers/{customer.pk}", {"currency": "EUR"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "conflict_error",
        "code": "currency_locked",
        "message": "The billing currency is already USD and cannot change.",
        "param": "currency",
    }
    assert Customer.objects.get(pk=customer.pk).currency == "USD"


def test_put_and_delete_are_not_offered(api: APIClient, make_customer: Callable[..., Any]) -> None:
    customer = make_customer()

    assert api.put(f"/api/v1/customers/{customer.pk}", {}, format="json").status_code == 405
    assert api.delete(f"/api/v1/customers/{customer.pk}").status_code == 405
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_a_read_key_cannot_create_or_change(
    keyed: Callable[..., tuple[APIClient, ApiKey]], make_customer: Callable[..., Any]
) -> None:
    client, _ = keyed(scopes=["read"])
    customer = make_customer(name="Same")

    created = client.post("/api/v1/customers", {"email": "a@example.com", "name": "A"})
    changed = client.patch(f"/api/v1/customers/{customer.pk}", {"name": "Other"}, format="json")

    assert created.status_code == changed.status_code == 403
    assert list(Customer.objects.values_list("name", flat=True)) == ["Same"]
    assert client.get(f"/api/v1/customers/{customer.pk}").status_code == 200


def test_list_is_newest_first_with_a_cursor(
    api: APIClient, make_customer: Callable[..., Any]
) -> None:
    customers = [make_customer() for _ in range(3)]

    first = api.get("/api/v1/customers", {"limit": 2}).json()
    second = api.get(first["next"]).json()

    assert [c["id"] for c in first["results"]] == [customers[2].pk, customers[1].pk]
    assert [c["id"] for c in second["results"]] == [customers[0].pk]
    assert second["next"] is None


def test_list_filters(
    api: APIClient,
    clock: Callable[[datetime], Any],
    make_customer: Callable[..., Any],
    make_partner: Callable[..., Any],
) -> None:
    acme = make_partner("acme")
    early = make_customer(email="Jo@example.com", country="FR", currency="EUR", partner=acme)
    clock(datetime(2026, 2, 1, tzinfo=UTC))
    late = make_customer(external_id="crm-9", country="US", currency="USD")

    def ids(**params: str) -> list[int]:
        response = api.get("/api/v1/customers", params)
        assert response.status_code == 200, response.json()
        return [c["id"] for c in response.json()["results"]]

    assert ids(email="jo@EXAMPLE.com") == [early.pk]
    assert ids(external_id="crm-9") == [late.pk]
    assert ids(country="us") == [late.pk]
    assert ids(currency="eur") == [early.pk]
    assert ids(partner="acme") == [early.pk]
    assert ids(created_after="2026-02-01T00:00:00Z") == [late.pk]
    assert ids(created_before="2026-02-01T00:00:00Z") == [early.pk]
    assert ids(country="fr", currency="usd") == []
    bad = api.get("/api/v1/customers", {"currency": "EURO"})
    assert bad.status_code == 400
    assert (bad.json()["error"]["code"], bad.json()["error"]["param"]) == ("invalid", "currency")


def test_interactions_are_recorded_by_the_api_key_and_listed_newest_first(
    keyed: Callable[..., tuple[APIClient, ApiKey]], make_customer: Callable[..., Any]
) -> None:
    client, key = keyed(scopes=["write"])
    customer = make_customer()
    url = f"/api/v1/customers/{customer.pk}/interactions"

    created = client.post(url, {"channel": "chat", "note": "Asked about invoices"}, format="json")
    client.post(
        url,
        {"channel": "phone", "note": "Earlier call", "occurred_at": "2026-01-10T08:00:00Z"},
        format="json",
    )
    listed = client.get(url)

    assert created.status_code == 201, created.json()
    interaction = Interaction.objects.get(note="Asked about invoices")
    assert created.json() == {
        "id": interaction.pk,
        "channel": "chat",
        "note": "Asked about invoices",
        "author": str(key),
        "occurred_at": "2026-01-15T12:00:00Z",
    }
    assert interaction.author is None
    assert [(i["note"], i["occurred_at"]) for i in listed.json()["results"]] == [
        ("Asked about invoices", "2026-01-15T12:00:00Z"),
        ("Earlier call", "2026-01-10T08:00:00Z"),
    ]
    assert AuditLog.objects.filter(action="interaction.create", actor_id=str(key.pk)).count() == 2


def test_interaction_errors(api: APIClient, make_customer: Callable[..., Any]) -> None:
    customer = make_customer()
    url = f"/api/v1/customers/{customer.pk}/interactions"

    future = api.post(
        url,
        {"channel": "chat", "note": "x", "occurred_at": "2026-01-16T00:00:00Z"},
        format="json",
    )
    bad_channel = api.post(url, {"channel": "fax", "note": "x"}, format="json")
    missing = api.post(
        f"/api/v1/customers/{customer.pk + 1}/interactions",
        {"channel": "chat", "note": "x"},
        format="json",
    )

    assert (future.status_code, future.json()["error"]["code"]) == (400, "occurred_in_future")
    assert (bad_channel.status_code, bad_channel.json()["error"]["param"]) == (400, "channel")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "customer_not_found")
    assert Interaction.objects.count() == 0
