"""The database itself refuses bad customer rows, whatever path writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from customers.models import Customer, Interaction, Partner
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db


def _row(**fields: Any) -> Customer:
    values: dict[str, Any] = {
        "external_id": "crm-1",
        "email": "a@example.com",
        "name": "A",
        "created_at": FIXED_NOW,
        "updated_at": FIXED_NOW,
    }
    return Customer(**{**values, **fields})


def _refused(rows: list[Customer]) -> str:
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        Customer.objects.bulk_create(rows)
    return str(error.value)


def test_a_valid_row_passes() -> None:
    Customer.objects.bulk_create([_row(currency="JPY", country="JP", region="13", billing_day=1)])

    assert Customer.objects.count() == 1


def test_duplicate_external_id() -> None:
    Customer.objects.bulk_create([_row()])

    message = _refused([_row(email="b@example.com")])

    assert "customers_customer_external_id_key" in message
    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"currency": "usd"}, "customer_currency_iso"),
        ({"currency": "US1"}, "customer_currency_iso"),
        ({"country": "fr"}, "customer_country_iso"),
        ({"country": "F"}, "customer_country_iso"),
        ({"billing_day": 0}, "customer_billing_day_in_month"),
        ({"billing_day": 32}, "customer_billing_day_in_month"),
        ({"external_id": ""}, "customer_external_id_not_blank"),
        ({"email": ""}, "customer_email_not_blank"),
        ({"name": ""}, "customer_name_not_blank"),
        ({"region": "CA"}, "customer_region_iso"),
        ({"country": "US", "region": "ca"}, "customer_region_iso"),
        ({"metadata": ["a"]}, "customer_metadata_is_object"),
        ({"metadata": "text"}, "customer_metadata_is_object"),
    ],
)
def test_check_constraints(fields: dict[str, Any], constraint: str) -> None:
    message = _refused([_row(**fields)])

    assert constraint in message
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("day", [0, 32])
def test_billing_day_through_raw_sql(make_customer: Callable[..., Customer], day: int) -> None:
    customer = make_customer(billing_day=10)

    with pytest.raises(IntegrityError) as error, transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "UPDATE customers_customer SET billing_day = %s WHERE id = %s", [day, customer.pk]
        )

    assert "customer_billing_day_in_month" in str(error.value)
    assert Customer.objects.get(pk=customer.pk).billing_day == 10


def test_partner_code_and_interaction_note_through_raw_sql(
    make_customer: Callable[..., Customer],
) -> None:
    customer = make_customer()

    with pytest.raises(IntegrityError) as partner_error, transaction.atomic():
        Partner.objects.bulk_create([Partner(code="Acme Corp", name="Acme", created_at=FIXED_NOW)])
    with pytest.raises(IntegrityError) as note_error, transaction.atomic():
        Interaction.objects.bulk_create(
            [Interaction(customer=customer, channel="note", note="", occurred_at=FIXED_NOW)]
        )

    assert "partner_code_slug" in str(partner_error.value)
    assert "interaction_note_not_empty" in str(note_error.value)
    assert Partner.objects.count() == 0
    assert Interaction.objects.count() == 0
