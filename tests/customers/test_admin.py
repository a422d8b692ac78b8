"""The Django admin for partners, customers and interactions: saves go through the services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from core.models import AuditLog
from customers.models import Customer, Interaction, Partner

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
NO_INTERACTIONS = {
    "interactions-TOTAL_FORMS": "0",
    "interactions-INITIAL_FORMS": "0",
    "interactions-MIN_NUM_FORMS": "0",
    "interactions-MAX_NUM_FORMS": "1000",
}


def _customer_form(**overrides: str) -> dict[str, str]:
    data = {
        "external_id": "",
        "email": "jane@example.com",
        "name": "Jane",
        "currency": "",
        "country": "",
        "region": "",
        "postal_code": "",
        "tax_id": "",
        "segments": "",
        "acquisition_channel": "organic",
        "partner": "",
        "price_list": "",
        "billing_day": "",
        "autocharge": "on",
        "metadata": "{}",
        **NO_INTERACTIONS,
    }
    data.update(overrides)
    return data


def test_adding_a_customer_with_a_first_interaction(
    admin_client: Client, admin_user: Any, clock: Any
) -> None:
    response = admin_client.post(
        "/admin/customers/customer/add/",
        _customer_form(
            email="Jane@EXAMPLE.com",
            currency="eur",
            country="fr",
            region="FR-75",
            segments="VIP,b2b",
            metadata='{"source": "fair"}',
            **{
                "interactions-TOTAL_FORMS": "1",
                "interactions-0-channel": "phone",
                "interactions-0-note": "Signed up at the fair",
            },
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    customer = Customer.objects.get()
    assert customer.external_id.startswith("cus_")
    assert (customer.email, customer.currency, customer.country, customer.region) == (
        "Jane@example.com",
        "EUR",
        "FR",
        "75",
    )
    assert customer.segments == ["vip", "b2b"]
    assert customer.metadata == {"source": "fair"}
    assert customer.created_at == customer.updated_at == NOW
    interaction = Interaction.objects.get()
    assert (interaction.customer_id, interaction.channel, interaction.note) == (
        customer.pk,
        "phone",
        "Signed up at the fair",
    )
    assert interaction.author_id == admin_user.pk
    assert interaction.author_label == "admin"
    assert interaction.occurred_at == NOW
    assert list(AuditLog.objects.order_by("id").values_list("action", "actor_label")) == [
        ("customer.create", "admin"),
        ("interaction.create", "admin"),
    ]


def test_a_rule_broken_in_the_admin_shows_on_the_field_and_saves_nothing(
    admin_client: Client, clock: Any
) -> None:
    response = admin_client.post(
        "/admin/customers/customer/add/", _customer_form(country="US", region="Cali")
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {
        "region": ["'Cali' is not an ISO 3166-2 subdivision code (such as CA for US-CA)."]
    }
    assert Customer.objects.count() == 0
    assert AuditLog.objects.count() == 0


def test_the_currency_lock_holds_in_the_admin(
    admin_client: Client, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(currency="USD", email="c@example.com", external_id="crm-1")

    response = admin_client.post(
        f"/admin/customers/customer/{customer.pk}/change/",
        _customer_form(external_id="crm-1", email="c@example.com", currency="EUR", name="C"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "currency": ["The billing currency is already USD and cannot change."]
    }
    assert Customer.objects.get(pk=customer.pk).currency == "USD"


def test_changing_a_customer_audits_once_with_before_and_after(
    admin_client: Client, clock: Callable[[datetime], Any], make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(email="c@example.com", external_id="crm-1", name="Old")
    clock(datetime(2026, 2, 2, tzinfo=UTC))

    response = admin_client.post(
        f"/admin/customers/customer/{customer.pk}/change/",
        _customer_form(external_id="crm-1", email="c@example.com", name="New", billing_day="15"),
    )

    assert response.status_code == 302
    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.name, stored.billing_day) == ("New", 15)
    assert stored.created_at == NOW
    assert stored.updated_at == datetime(2026, 2, 2, tzinfo=UTC)
    [entry] = AuditLog.objects.filter(action="customer.update")
    assert entry.actor_label == "admin"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.after["name"]) == ("Old", "New")
    assert (entry.before["billing_day"], entry.after["billing_day"]) == (None, 15)


def test_the_changelist_searches_and_filters(
    admin_client: Client, make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    acme = make_partner("acme")
    make_customer(email="jane@example.com", name="Jane", partner=acme, country="FR")
    make_customer(email="bob@example.com", name="Bob", external_id="crm-bob", country="US")

    def names(query: str) -> list[str]:
        response = admin_client.get(f"/admin/customers/customer/?{query}")
        assert response.status_code == 200
        return sorted(c.name for c in response.context["cl"].result_list)

    assert names("q=jane@") == ["Jane"]
    assert names("q=crm-bob") == ["Bob"]
    assert names(f"partner__id__exact={acme.pk}") == ["Jane"]
    assert names("country=US") == ["Bob"]
    assert names("autocharge__exact=1") == ["Bob", "Jane"]


def test_the_customer_page_shows_the_history_read_only(
    admin_client: Client, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(name="Jane")
    Interaction.objects.create(
        customer=customer, channel="email", note="Old message", author_label="bob", occurred_at=NOW
    )

    response = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Old message" in html
    assert 'name="interactions-0-note"' not in html  # the existing entry is not editable
    assert 'name="interactions-1-note"' in html  # one blank row to log a new contact


def test_an_interaction_logged_in_its_own_admin_is_authored_by_the_user(
    admin_client: Client, admin_user: Any, make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer()

    response = admin_client.post(
        "/admin/customers/interaction/add/",
        {"customer": str(customer.pk), "channel": "chat", "note": "Wants a refund"},
    )
    past = admin_client.post(
        "/admin/customers/interaction/add/",
        {
            "customer": str(customer.pk),
            "channel": "phone",
            "note": "From tomorrow",
            "occurred_at": "2026-01-16 09:00:00",
        },
    )

    assert response.status_code == 302
    interaction = Interaction.objects.get()
    assert (interaction.author_id, interaction.author_label) == (admin_user.pk, "admin")
    assert interaction.occurred_at == NOW
    assert past.status_code == 200
    assert past.context["adminform"].form.errors == {
        "occurred_at": ["An interaction cannot be logged in the future."]
    }
    change = admin_client.post(
        f"/admin/customers/interaction/{interaction.pk}/change/",
        {"customer": str(customer.pk), "channel": "chat", "note": "Rewritten"},
    )
    assert change.status_code == 403
    assert Interaction.objects.get().note == "Wants a refund"


def test_partners_are_created_and_deactivated_through_the_services(
    admin_client: Client, clock: Any
) -> None:
    added = admin_client.post(
        "/admin/customers/partner/add/",
        {"code": "ACME", "name": "Acme", "contact_email": "", "price_list": ""},
    )
    partner = Partner.objects.get()
    deactivated = admin_client.post(
        "/admin/customers/partner/",
        {"action": "deactivate", "_selected_action": [str(partner.pk)]},
    )

    assert added.status_code == deactivated.status_code == 302
    partner.refresh_from_db()
    assert (partner.code, partner.active, partner.created_at) == ("acme", False, NOW)
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)) == [
        "partner.create",
        "partner.deactivate",
    ]


def test_a_partner_code_cannot_be_edited(
    admin_client: Client, make_partner: Callable[..., Partner]
) -> None:
    partner = make_partner("acme", name="Acme")

    response = admin_client.post(
        f"/admin/customers/partner/{partner.pk}/change/",
        {"code": "hijack", "name": "Acme Ltd", "contact_email": "", "price_list": ""},
    )

    assert response.status_code == 302
    partner.refresh_from_db()
    assert (partner.code, partner.name) == ("acme", "Acme Ltd")
