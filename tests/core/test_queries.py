"""any_of: a filter on hundreds of ids sent as one array."""

from __future__ import annotations

import pytest

from core.actors import Actor
from core.queries import any_of
from customers.models import Customer
from customers.services import customer_create

STAFF = Actor.system("test")


@pytest.fixture
def customers(db: None) -> list[Customer]:
    return [
        customer_create(email=f"c{n}@example.com", name=f"C {n}", external_id=f"c-{n}", actor=STAFF)
        for n in range(3)
    ]


def test_any_of_finds_exactly_the_rows_with_those_ids(customers: list[Customer]) -> None:
    wanted = {customers[0].pk, customers[2].pk}
    found = set(Customer.objects.filter(any_of("pk", wanted)).values_list("pk", flat=True))
    assert found == wanted


def test_any_of_no_ids_finds_nothing(customers: list[Customer]) -> None:
    assert not Customer.objects.filter(any_of("pk", [])).exists()


@pytest.mark.parametrize("bad", ["1", True, 1.0, None])
def test_any_of_refuses_what_is_not_an_integer_id(bad: object) -> None:
    with pytest.raises(TypeError):
        any_of("pk", [1, bad])  # type: ignore[list-item]
