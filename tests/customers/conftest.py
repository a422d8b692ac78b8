"""Fixtures of the customers tests: partners, price lists and customers made the real way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog.models import PriceList
from core.actors import Actor
from customers.models import Customer, Partner
from customers.services import customer_create, partner_create
from tests.conftest import FIXED_NOW

STAFF = Actor(type="user", id="7", label="alice")


@pytest.fixture
def make_price_list(db: None) -> Callable[..., PriceList]:
    def make(code: str = "partners", *, archived: bool = False, **fields: Any) -> PriceList:
        return PriceList.objects.create(
            code=code,
            name=code.title(),
            kind=fields.pop("kind", PriceList.Kind.PARTNER),
            created_at=FIXED_NOW,
            archived_at=FIXED_NOW if archived else None,
            **fields,
        )

    return make


@pytest.fixture
def make_partner(clock: Any) -> Callable[..., Partner]:
    def make(code: str = "acme", **fields: Any) -> Partner:
        fields.setdefault("name", code.title())
        return partner_create(code=code, actor=STAFF, **fields)

    return make


@pytest.fixture
def make_customer(clock: Any) -> Callable[..., Customer]:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Customer:
        number = next(counter)
        fields.setdefault("external_id", f"ext-{number}")
        fields.setdefault("email", f"customer{number}@example.com")
        fields.setdefault("name", f"Customer {number}")
        return customer_create(actor=STAFF, **fields)

    return make
