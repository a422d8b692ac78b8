"""Reads: partner visibility, lookups that never leak, search ranking, list filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import NotFoundError
from customers.models import Customer
from customers.selectors import (
    customer_get,
    customer_list,
    customer_search,
    customers_visible_to,
    partner_get,
    price_list_get,
)

pytestmark = pytest.mark.django_db


def test_a_partner_sees_only_its_customers_and_staff_see_all(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    a = make_customer(partner=acme)
    g = make_customer(partner=globex)
    direct = make_customer()

    assert set(customers_visible_to(partner=acme)) == {a}
    assert set(customers_visible_to(partner=globex)) == {g}
    assert set(customers_visible_to(partner=None)) == {a, g, direct}


@pytest.mark.parametrize("pk", ["other", "missing", "abc"])
def test_customer_get_answers_not_found_alike_for_others_missing_and_garbage(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any], pk: str
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    theirs = make_customer(partner=globex)
    lookups: dict[str, int | str] = {
        "other": theirs.pk,
        "missing": theirs.pk + 1000,
        "abc": "abc",
    }
    lookup = lookups[pk]

    with pytest.raises(NotFoundError) as error:
        customer_get(pk=lookup, partner=acme)

    assert (error.value.code, error.value.param) == ("customer_not_found", "id")
    assert customer_get(pk=theirs.pk, partner=None) == theirs
    assert customer_get(pk=str(theirs.pk), partner=globex) == theirs


def test_search_ranks_exact_then_prefix_then_contains(
    make_customer: Callable[..., Customer],
) -> None:
    contains = make_customer(name="Alice Smithson", email="a.smithson@example.com")
    prefix = make_customer(name="Smith & Co", email="hello@smithco.example")
    exact = make_customer(name="Zed", email="smith@example.com")
    make_customer(name="Unrelated", email="nobody@example.com")

    found = customer_search(query="  SMITH@example.com ")
    found_loose = customer_search(query="smith")

    assert found == [exact]
    # Both names and emails count as prefixes; ties read by name.
    assert found_loose == [prefix, exact, contains]


def test_search_by_external_id_or_id_and_within_a_partner(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    acme = make_partner("acme")
    ours = make_customer(external_id="CRM-7781", partner=acme)
    theirs = make_customer(external_id="CRM-7782")

    assert customer_search(query="CRM-7781") == [ours]
    assert customer_search(query="crm-778") == [ours, theirs]
    assert customer_search(query="crm-778", partner=acme) == [ours]
    assert customer_search(query=str(theirs.pk))[0] == theirs
    assert customer_search(query="   ") == []


def test_list_filters_narrow_and_never_widen_a_partners_scope(
    clock: Callable[[datetime], Any],
    make_customer: Callable[..., Customer],
    make_partner: Callable[..., Any],
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    jan = make_customer(partner=acme, email="Jan@Example.com", country="FR", currency="EUR")
    clock(datetime(2026, 2, 1, tzinfo=UTC))
    feb = make_customer(partner=acme, country="DE", currency="EUR")
    theirs = make_customer(partner=globex, email="jan@example.com", country="FR")

    assert set(customer_list(partner=None, email="jan@EXAMPLE.com")) == {jan, theirs}
    assert set(customer_list(partner=acme, email="jan@example.com")) == {jan}
    assert set(customer_list(partner=acme, country="fr")) == {jan}
    assert set(customer_list(partner=acme, currency="eur")) == {jan, feb}
    assert set(customer_list(partner=acme, partner_code="globex")) == set()
    assert set(customer_list(partner=None, partner_code="globex")) == {theirs}
    assert set(customer_list(partner=None, external_id=feb.external_id)) == {feb}
    feb_first = datetime(2026, 2, 1, tzinfo=UTC)
    assert set(customer_list(partner=acme, created_after=feb_first)) == {feb}
    assert set(customer_list(partner=acme, created_before=feb_first)) == {jan}


def test_partner_and_price_list_lookups_name_what_is_missing(
    make_partner: Callable[..., Any], make_price_list: Callable[..., Any]
) -> None:
    acme = make_partner("acme")
    archived = make_price_list("old", archived=True)

    assert partner_get(code="acme") == acme
    assert price_list_get(code="old") == archived
    with pytest.raises(NotFoundError) as no_partner:
        partner_get(code="nope")
    with pytest.raises(NotFoundError) as no_list:
        price_list_get(code="nope")
    assert (no_partner.value.code, no_partner.value.param) == ("partner_not_found", "partner")
    assert (no_list.value.code, no_list.value.param) == ("price_list_not_found", "price_list")
