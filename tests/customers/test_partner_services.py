"""Partners: creation, changes, deactivation; every write audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from customers.models import Partner
from customers.services import (
    partner_create,
    partner_deactivate,
    partner_reactivate,
    partner_update,
)
from tests.customers.conftest import STAFF

pytestmark = pytest.mark.django_db


def test_create_normalizes_and_audits(clock: Any, make_price_list: Callable[..., Any]) -> None:
    price_list = make_price_list("acme-prices")

    partner = partner_create(
        code=" ACME-Resellers ",
        name=" Acme Resellers ",
        contact_email="Deals@ACME.example",
        price_list=price_list,
        actor=STAFF,
    )

    stored = Partner.objects.get(pk=partner.pk)
    assert (stored.code, stored.name, stored.contact_email) == (
        "acme-resellers",
        "Acme Resellers",
        "Deals@acme.example",
    )
    assert stored.price_list_id == price_list.pk
    assert stored.active is True
    assert stored.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    entry = AuditLog.objects.get(action="partner.create")
    assert entry.object_id == str(partner.pk)
    assert entry.before is None
    assert entry.after == {
        "id": partner.pk,
        "code": "acme-resellers",
        "name": "Acme Resellers",
        "contact_email": "Deals@acme.example",
        "price_list": price_list.pk,
        "active": True,
        "created_at": "2026-01-15 12:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"code": "acme corp"}, "invalid_partner_code", "code"),
        ({"code": ""}, "invalid_partner_code", "code"),
        ({"name": ""}, "invalid_name", "name"),
        ({"contact_email": "nope"}, "invalid_email", "contact_email"),
    ],
)
def test_create_refuses_bad_input(
    clock: Any, fields: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        partner_create(**{"code": "acme", "name": "Acme", **fields}, actor=STAFF)

    assert (error.value.code, error.value.param) == (code, param)
    assert Partner.objects.count() == 0
    assert AuditLog.objects.count() == 0


def test_create_refuses_an_archived_price_list(
    clock: Any, make_price_list: Callable[..., Any]
) -> None:
    with pytest.raises(ValidationError) as error:
        partner_create(
            code="acme", name="Acme", price_list=make_price_list("old", archived=True), actor=STAFF
        )

    assert error.value.code == "price_list_archived"
    assert Partner.objects.count() == 0


def test_a_duplicate_code_is_a_conflict(make_partner: Callable[..., Partner]) -> None:
    make_partner("acme", name="First")

    with pytest.raises(ConflictError) as error:
        partner_create(code="ACME", name="Second", actor=STAFF)

    assert (error.value.code, error.value.param) == ("partner_exists", "code")
    assert list(Partner.objects.values_list("name", flat=True)) == ["First"]


def test_update_changes_details_but_never_the_code(
    make_partner: Callable[..., Partner], make_price_list: Callable[..., Any]
) -> None:
    partner = make_partner("acme", name="Acme")
    price_list = make_price_list("acme-prices")

    partner_update(partner=partner, name="Acme Ltd", price_list=price_list, actor=STAFF)

    stored = Partner.objects.get(pk=partner.pk)
    assert (stored.code, stored.name, stored.price_list_id) == ("acme", "Acme Ltd", price_list.pk)
    entry = AuditLog.objects.get(action="partner.update")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.after["name"]) == ("Acme", "Acme Ltd")
    assert (entry.before["price_list"], entry.after["price_list"]) == (None, price_list.pk)


def test_an_update_without_change_is_not_audited(make_partner: Callable[..., Partner]) -> None:
    partner = make_partner("acme", name="Acme")

    partner_update(partner=partner, name="Acme", actor=STAFF)

    assert not AuditLog.objects.filter(action="partner.update").exists()


def test_deactivate_then_reactivate(make_partner: Callable[..., Partner]) -> None:
    partner = make_partner("acme")

    partner_deactivate(partner=partner, actor=STAFF)
    inactive = Partner.objects.get(pk=partner.pk).active
    partner_deactivate(partner=partner, actor=STAFF)  # twice: no second entry
    partner_reactivate(partner=partner, actor=STAFF)

    assert inactive is False
    assert Partner.objects.get(pk=partner.pk).active is True
    assert list(
        AuditLog.objects.filter(object_type="customers.partner")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["partner.create", "partner.deactivate", "partner.reactivate"]
