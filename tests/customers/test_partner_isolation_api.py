"""A partner's API key sees and changes only its own customers, by every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from customers.models import Customer, Interaction, Partner
from customers.services import partner_deactivate
from tests.customers.conftest import STAFF

pytestmark = pytest.mark.django_db


@dataclass
class World:
    acme: Partner
    globex: Partner
    ours: Customer
    theirs: Customer
    direct: Customer
    acme_client: APIClient


@pytest.fixture
def world(
    api_client_for: Callable[..., APIClient],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
) -> World:
    acme, globex = make_partner("acme"), make_partner("globex")
    return World(
        acme=acme,
        globex=globex,
        ours=make_customer(partner=acme, email="ours@example.com", external_id="crm-ours"),
        theirs=make_customer(partner=globex, email="theirs@example.com", external_id="crm-theirs"),
        direct=make_customer(email="direct@example.com", external_id="crm-direct"),
        acme_client=api_client_for(scopes=["write"], partner=acme),
    )


def _ids(client: APIClient, **params: str) -> list[int]:
    response = client.get("/api/v1/customers", params)
    assert response.status_code == 200, response.json()
    return [c["id"] for c in response.json()["results"]]


def test_another_partners_customer_is_not_found_exactly_like_a_missing_one(world: World) -> None:
    theirs = world.acme_client.get(f"/api/v1/customers/{world.theirs.pk}")
    direct = world.acme_client.get(f"/api/v1/customers/{world.direct.pk}")
    ours = world.acme_client.get(f"/api/v1/customers/{world.ours.pk}")

    assert theirs.status_code == direct.status_code == 404
    assert theirs.json()["error"]["code"] == "customer_not_found"
    assert theirs.json()["error"]["type"] == "invalid_request_error"
    assert "theirs" not in theirs.content.decode()
    assert ours.status_code == 200
    assert ours.json()["partner"] == "acme"


def test_the_list_and_every_filter_stay_within_the_partner(world: World) -> None:
    client = world.acme_client

    assert _ids(client) == [world.ours.pk]
    assert _ids(client, email="theirs@example.com") == []
    assert _ids(client, external_id="crm-theirs") == []
    assert _ids(client, partner="globex") == []
    assert _ids(client, partner="acme") == [world.ours.pk]
    assert _ids(client, email="ours@example.com") == [world.ours.pk]


def test_a_non_partner_key_sees_everyone(
    world: World, api_client_for: Callable[..., APIClient]
) -> None:
    client = api_client_for(scopes=["read"])

    assert _ids(client) == [world.direct.pk, world.theirs.pk, world.ours.pk]
    assert _ids(client, partner="globex") == [world.theirs.pk]
    assert client.get(f"/api/v1/customers/{world.theirs.pk}").json()["partner"] == "globex"


def test_created_customers_belong_to_the_keys_partner(world: World) -> None:
    response = world.acme_client.post(
        "/api/v1/customers", {"email": "new@example.com", "name": "New"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["partner"] == "acme"
    assert Customer.objects.get(email="new@example.com").partner_id == world.acme.pk


@pytest.mark.parametrize("partner", ["globex", "does-not-exist", None])
def test_creating_for_another_partner_or_none_is_refused(world: World, partner: str | None) -> None:
    response = world.acme_client.post(
        "/api/v1/customers",
        {"email": "new@example.com", "name": "New", "partner": partner},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert response.json()["error"]["code"] == "partner_forbidden"
    assert response.json()["error"]["param"] == "partner"
    assert not Customer.objects.filter(email="new@example.com").exists()


def test_another_partners_customer_cannot_be_changed(world: World) -> None:
    response = world.acme_client.patch(
        f"/api/v1/customers/{world.theirs.pk}", {"name": "Hijacked"}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"
    assert Customer.objects.get(pk=world.theirs.pk).name == world.theirs.name


def test_an_own_customer_cannot_be_given_to_another_partner(world: World) -> None:
    response = world.acme_client.patch(
        f"/api/v1/customers/{world.ours.pk}", {"partner": "globex"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "partner_forbidden"
    assert Customer.objects.get(pk=world.ours.pk).partner_id == world.acme.pk


def test_another_partners_interactions_are_not_found(world: World) -> None:
    url = f"/api/v1/customers/{world.theirs.pk}/interactions"

    listed = world.acme_client.get(url)
    created = world.acme_client.post(url, {"channel": "note", "note": "x"}, format="json")

    assert listed.status_code == created.status_code == 404
    assert created.json()["error"]["code"] == "customer_not_found"
    assert Interaction.objects.count() == 0


def test_a_deactivated_partners_key_stops_working(world: World) -> None:
    partner_deactivate(partner=world.acme, actor=STAFF)

    response = world.acme_client.get("/api/v1/customers")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_partner_key_cannot_pick_someone_elses_price_list(
    world: World, make_price_list: Callable[..., Any]
) -> None:
    make_price_list("vip-prices")

    response = world.acme_client.post(
        "/api/v1/customers",
        {"email": "new@example.com", "name": "New", "price_list": "vip-prices"},
        format="json",
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "price_list_forbidden"
    assert not Customer.objects.filter(email="new@example.com").exists()
