"""customer_create / customer_update: normalization, validation codes, the currency lock, audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from core.models import AuditLog
from customers.models import Customer
from customers.services import customer_create, customer_update
from tests.customers.conftest import STAFF

pytestmark = pytest.mark.django_db

LATER = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def _audit(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_create_normalizes_every_field_and_records_the_audit_entry(
    clock: Any, make_partner: Callable[..., Any], make_price_list: Callable[..., Any]
) -> None:
    partner = make_partner("acme")
    price_list = make_price_list("acme-prices")

    customer = customer_create(
        external_id="  crm-42 ",
        email="  Jane.Doe@Example.COM ",
        name=" Jane Doe ",
        currency="eur",
        country="fr",
        region="fr-75",
        postal_code=" 75001 ",
        tax_id="FR40303265045",
        segments=["VIP", "b2b", "vip"],
        acquisition_channel="referral",
        partner=partner,
        price_list=price_list,
        billing_day=31,
        autocharge=False,
        metadata={"crm": "hubspot", "score": 7},
        actor=STAFF,
    )

    stored = Customer.objects.get(pk=customer.pk)
    assert stored.external_id == "crm-42"
    assert stored.email == "Jane.Doe@example.com"
    assert stored.name == "Jane Doe"
    assert stored.currency == "EUR"
    assert stored.country == "FR"
    assert stored.region == "75"
    assert stored.postal_code == "75001"
    assert stored.segments == ["vip", "b2b"]
    assert stored.acquisition_channel == "referral"
    assert stored.partner_id == partner.pk
    assert stored.price_list_id == price_list.pk
    assert stored.billing_day == 31
    assert stored.autocharge is False
    assert stored.metadata == {"crm": "hubspot", "score": 7}
    assert stored.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert stored.updated_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    [entry] = _audit("customer.create")
    assert entry.actor_type == "user"
    assert entry.actor_label == "alice"
    assert entry.object_type == "customers.customer"
    assert entry.object_id == str(customer.pk)
    assert entry.before is None
    assert entry.after == {
        "id": customer.pk,
        "external_id": "crm-42",
        "email": "Jane.Doe@example.com",
        "name": "Jane Doe",
        "currency": "EUR",
        "country": "FR",
        "region": "75",
        "postal_code": "75001",
        "tax_id": "FR40303265045",
        "segments": ["vip", "b2b"],
        "acquisition_channel": "referral",
        "partner": partner.pk,
        "price_list": price_list.pk,
        "billing_day": 31,
        "autocharge": False,
        "user": None,
        "metadata": {"crm": "hubspot", "score": 7},
        "created_at": "2026-01-15 12:00:00+00:00",
        "updated_at": "2026-01-15 12:00:00+00:00",
    }
    assert entry.request_id == ""


def test_create_with_only_email_and_name_uses_the_defaults(clock: Any) -> None:
    customer = customer_create(email="bob@example.com", name="Bob", actor=STAFF)

    assert customer.external_id.startswith("cus_")
    assert len(customer.external_id) == 28
    assert customer.currency == ""
    assert customer.country == ""
    assert customer.segments == []
    assert customer.acquisition_channel == "organic"
    assert customer.partner is None
    assert customer.billing_day is None
    assert customer.autocharge is True
    assert customer.metadata == {}


def test_a_partners_customer_defaults_to_the_partner_channel(
    make_partner: Callable[..., Any],
) -> None:
    customer = customer_create(
        email="bob@example.com", name="Bob", partner=make_partner("acme"), actor=STAFF
    )

    assert customer.acquisition_channel == "partner"


def test_a_duplicate_external_id_is_a_conflict_and_writes_nothing(
    make_customer: Callable[..., Customer],
) -> None:
    first = make_customer(external_id="crm-1", email="first@example.com")

    with pytest.raises(ConflictError) as error:
        customer_create(external_id="crm-1", email="second@example.com", name="Two", actor=STAFF)

    assert error.value.code == "customer_exists"
    assert error.value.param == "external_id"
    assert list(Customer.objects.values_list("pk", "email")) == [(first.pk, "first@example.com")]
    assert len(_audit("customer.create")) == 1


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("external_id", "", "invalid_external_id"),
        ("external_id", "a\nb", "invalid_external_id"),
        ("external_id", "x" * 101, "invalid_external_id"),
        ("email", "not-an-email", "invalid_email"),
        ("email", "", "invalid_email"),
        ("email", "a@" + "b" * 250 + ".com", "invalid_email"),
        ("name", "   ", "invalid_name"),
        ("name", "x" * 201, "invalid_name"),
        ("currency", "dollars", "invalid_currency"),
        ("currency", "ABC", "invalid_currency"),
        ("country", "FRA", "invalid_country"),
        ("country", "F1", "invalid_country"),
        ("country", "ZZ", "invalid_country"),
        ("country", "XA", "invalid_country"),
        ("postal_code", "1" * 21, "invalid_postal_code"),
        ("tax_id", "1" * 51, "invalid_tax_id"),
        ("segments", "vip", "invalid_segments"),
        ("segments", ["not a slug"], "invalid_segments"),
        ("segments", [f"s{n}" for n in range(21)], "invalid_segments"),
        ("acquisition_channel", "television", "invalid_acquisition_channel"),
        ("billing_day", 0, "invalid_billing_day"),
        ("billing_day", 32, "invalid_billing_day"),
        ("billing_day", True, "invalid_billing_day"),
        ("autocharge", "yes", "invalid_autocharge"),
        ("metadata", ["a", "b"], "invalid_metadata"),
        ("metadata", {f"k{n}": n for n in range(51)}, "invalid_metadata"),
        ("metadata", {"": "empty key"}, "invalid_metadata"),
        ("metadata", {"k" * 41: "long key"}, "invalid_metadata"),
        ("metadata", {1: "int key"}, "invalid_metadata"),
        ("metadata", {"when": datetime(2026, 1, 1, tzinfo=UTC)}, "invalid_metadata"),
        ("metadata", {"ratio": float("nan")}, "invalid_metadata"),
    ],
)
def test_create_refuses_bad_input_with_a_code_and_writes_nothing(
    clock: Any, field: str, value: object, code: str
) -> None:
    fields: dict[str, Any] = {"external_id": "crm-1", "email": "ok@example.com", "name": "Ok"}
    fields[field] = value

    with pytest.raises(ValidationError) as error:
        customer_create(**fields, actor=STAFF)

    assert error.value.code == code
    assert error.value.param == field
    assert Customer.objects.count() == 0
    assert AuditLog.objects.filter(object_type="customers.customer").count() == 0


def test_metadata_at_the_limits_is_accepted(clock: Any) -> None:
    metadata = {f"{n:0>40}": {"nested": [n]} for n in range(50)}

    customer = customer_create(email="a@example.com", name="A", metadata=metadata, actor=STAFF)

    assert Customer.objects.get(pk=customer.pk).metadata == metadata


@pytest.mark.parametrize(
    ("country", "region", "code"),
    [
        ("", "CA", "region_requires_country"),
        ("FR", "US-CA", "invalid_region"),
        ("US", "CALI", "invalid_region"),
        ("US", "C A", "invalid_region"),
    ],
)
def test_a_region_is_a_subdivision_of_the_country(
    clock: Any, country: str, region: str, code: str
) -> None:
    with pytest.raises(ValidationError) as error:
        customer_create(
            email="a@example.com", name="A", country=country, region=region, actor=STAFF
        )

    assert (error.value.code, error.value.param) == (code, "region")
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(("region", "stored"), [("ca", "CA"), ("US-CA", "CA"), ("us-ny", "NY")])
def test_a_region_is_stored_as_its_iso_3166_2_suffix(clock: Any, region: str, stored: str) -> None:
    customer = customer_create(
        email="a@example.com", name="A", country="us", region=region, actor=STAFF
    )

    assert (customer.country, customer.region) == ("US", stored)


def test_kosovo_is_accepted_although_user_assigned(clock: Any) -> None:
    customer = customer_create(email="a@example.com", name="A", country="xk", actor=STAFF)

    assert customer.country == "XK"


def test_an_archived_price_list_or_an_inactive_partner_is_refused(
    make_partner: Callable[..., Any], make_price_list: Callable[..., Any]
) -> None:
    archived = make_price_list("old", archived=True)
    inactive = make_partner("gone")
    inactive.active = False
    inactive.save()

    with pytest.raises(ValidationError) as archived_error:
        customer_create(email="a@example.com", name="A", price_list=archived, actor=STAFF)
    with pytest.raises(ValidationError) as inactive_error:
        customer_create(email="a@example.com", name="A", partner=inactive, actor=STAFF)

    assert (archived_error.value.code, archived_error.value.param) == (
        "price_list_archived",
        "price_list",
    )
    assert (inactive_error.value.code, inactive_error.value.param) == (
        "partner_inactive",
        "partner",
    )
    assert Customer.objects.count() == 0


# --- partner scope ----------------------------------------------------------------------------


def test_a_partner_scoped_create_forces_the_partner(make_partner: Callable[..., Any]) -> None:
    acme = make_partner("acme")

    customer = customer_create(email="a@example.com", name="A", actor=STAFF, partner_scope=acme)

    assert customer.partner_id == acme.pk
    assert customer.acquisition_channel == "partner"


def test_a_partner_scoped_create_for_another_partner_is_forbidden(
    make_partner: Callable[..., Any],
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")

    with pytest.raises(PermissionDeniedError) as error:
        customer_create(
            email="a@example.com", name="A", partner=globex, actor=STAFF, partner_scope=acme
        )

    assert (error.value.code, error.value.param) == ("partner_forbidden", "partner")
    assert Customer.objects.count() == 0


def test_a_partner_scoped_create_for_no_partner_is_forbidden(
    make_partner: Callable[..., Any],
) -> None:
    acme = make_partner("acme")

    with pytest.raises(PermissionDeniedError) as error:
        customer_create(
            email="a@example.com", name="A", partner=None, actor=STAFF, partner_scope=acme
        )
    own = customer_create(
        email="b@example.com", name="B", partner=acme, actor=STAFF, partner_scope=acme
    )

    assert error.value.code == "partner_forbidden"
    assert list(Customer.objects.values_list("pk", flat=True)) == [own.pk]


def test_a_partner_scoped_write_may_only_use_the_partners_own_price_list(
    make_partner: Callable[..., Any], make_price_list: Callable[..., Any]
) -> None:
    own = make_price_list("acme-prices")
    cheaper = make_price_list("cheaper")
    acme = make_partner("acme", price_list=own)

    with pytest.raises(PermissionDeniedError) as error:
        customer_create(
            email="a@example.com", name="A", price_list=cheaper, actor=STAFF, partner_scope=acme
        )
    customer = customer_create(
        email="b@example.com", name="B", price_list=own, actor=STAFF, partner_scope=acme
    )

    assert (error.value.code, error.value.param) == ("price_list_forbidden", "price_list")
    assert list(Customer.objects.values_list("email", "price_list_id")) == [
        ("b@example.com", own.pk)
    ]
    assert customer.price_list_id == own.pk


def test_a_partner_scoped_update_cannot_reach_or_give_away_customers(
    make_partner: Callable[..., Any], make_customer: Callable[..., Customer]
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    theirs = make_customer(partner=globex, name="Theirs")
    ours = make_customer(partner=acme, name="Ours")

    with pytest.raises(NotFoundError) as not_found:
        customer_update(customer=theirs, name="Taken", actor=STAFF, partner_scope=acme)
    with pytest.raises(PermissionDeniedError) as to_other:
        customer_update(customer=ours, partner=globex, actor=STAFF, partner_scope=acme)
    with pytest.raises(PermissionDeniedError) as to_none:
        customer_update(customer=ours, partner=None, actor=STAFF, partner_scope=acme)

    assert not_found.value.code == "customer_not_found"
    assert to_other.value.code == to_none.value.code == "partner_forbidden"
    assert list(Customer.objects.order_by("pk").values_list("name", "partner__code")) == [
        ("Theirs", "globex"),
        ("Ours", "acme"),
    ]
    assert _audit("customer.update") == []


# --- updates ----------------------------------------------------------------------------------


def test_update_changes_only_what_is_given_and_audits_before_and_after(
    clock: Callable[[datetime], Any], make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(external_id="crm-1", email="old@example.com", country="US")
    clock(LATER)

    updated = customer_update(
        customer=customer, email="new@example.com", segments=["vip"], actor=STAFF
    )

    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.email, stored.segments, stored.country) == ("new@example.com", ["vip"], "US")
    assert stored.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert stored.updated_at == LATER
    assert updated.updated_at == LATER
    [entry] = _audit("customer.update")
    assert entry.occurred_at == LATER
    assert entry.before is not None
    assert entry.after is not None
    changed = {key for key in entry.after if entry.before[key] != entry.after[key]}
    assert changed == {"email", "segments", "updated_at"}
    assert (entry.before["email"], entry.after["email"]) == ("old@example.com", "new@example.com")
    assert (entry.before["segments"], entry.after["segments"]) == ([], ["vip"])


def test_an_update_that_changes_nothing_writes_nothing(
    clock: Callable[[datetime], Any], make_customer: Callable[..., Customer]
) -> None:
    customer = make_customer(email="same@example.com", currency="USD")
    clock(LATER)

    customer_update(customer=customer, email="same@example.com", currency="usd", actor=STAFF)

    assert Customer.objects.get(pk=customer.pk).updated_at == datetime(
        2026, 1, 15, 12, 0, tzinfo=UTC
    )
    assert _audit("customer.update") == []


def test_the_currency_can_be_set_once_while_empty(make_customer: Callable[..., Customer]) -> None:
    customer = make_customer()

    customer_update(customer=customer, currency="jpy", actor=STAFF)

    assert Customer.objects.get(pk=customer.pk).currency == "JPY"
    [entry] = _audit("customer.update")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["currency"], entry.after["currency"]) == ("", "JPY")


@pytest.mark.parametrize("new_currency", ["EUR", "", None])
def test_a_set_currency_is_locked(
    make_customer: Callable[..., Customer], new_currency: str | None
) -> None:
    customer = make_customer(currency="USD", name="Before")

    with pytest.raises(ConflictError) as error:
        customer_update(customer=customer, name="After", currency=new_currency, actor=STAFF)

    assert (error.value.code, error.value.param) == ("currency_locked", "currency")
    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.currency, stored.name) == ("USD", "Before")
    assert _audit("customer.update") == []


def test_the_lock_reads_the_stored_currency_not_a_stale_instance(
    make_customer: Callable[..., Customer],
) -> None:
    stale = make_customer()
    customer_update(customer=Customer.objects.get(pk=stale.pk), currency="USD", actor=STAFF)

    with pytest.raises(ConflictError) as error:
        customer_update(customer=stale, currency="EUR", actor=STAFF)

    assert error.value.code == "currency_locked"
    assert Customer.objects.get(pk=stale.pk).currency == "USD"


def test_a_bad_field_in_an_update_leaves_the_customer_untouched(
    make_customer: Callable[..., Customer],
) -> None:
    customer = make_customer(email="keep@example.com", billing_day=5)

    with pytest.raises(ValidationError) as error:
        customer_update(customer=customer, email="new@example.com", billing_day=32, actor=STAFF)

    assert (error.value.code, error.value.param) == ("invalid_billing_day", "billing_day")
    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.email, stored.billing_day) == ("keep@example.com", 5)
    assert _audit("customer.update") == []


def test_changing_external_id_to_a_taken_one_is_a_conflict(
    make_customer: Callable[..., Customer],
) -> None:
    make_customer(external_id="crm-1")
    second = make_customer(external_id="crm-2")

    with pytest.raises(ConflictError) as error:
        customer_update(customer=second, external_id="crm-1", actor=STAFF)

    assert (error.value.code, error.value.param) == ("customer_exists", "external_id")
    assert Customer.objects.get(pk=second.pk).external_id == "crm-2"


def test_a_new_country_clears_the_old_countrys_region(
    make_customer: Callable[..., Customer],
) -> None:
    customer = make_customer(country="US", region="CA")

    customer_update(customer=customer, country="DE", actor=STAFF)
    moved = Customer.objects.get(pk=customer.pk)
    customer_update(customer=moved, region="de-by", actor=STAFF)

    stored = Customer.objects.get(pk=customer.pk)
    assert (moved.country, moved.region) == ("DE", "")
    assert (stored.country, stored.region) == ("DE", "BY")


def test_optional_values_are_cleared_with_none(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    customer = make_customer(
        country="US", region="CA", billing_day=3, partner=make_partner("acme"), tax_id="T-1"
    )

    customer_update(
        customer=customer, country=None, billing_day=None, partner=None, tax_id=None, actor=STAFF
    )

    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.country, stored.region, stored.billing_day, stored.partner, stored.tax_id) == (
        "",
        "",
        None,
        None,
        "",
    )


def test_a_customer_of_a_deactivated_partner_can_still_be_updated(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    acme = make_partner("acme")
    customer = make_customer(partner=acme)
    acme.active = False
    acme.save()

    customer_update(customer=customer, partner=acme, name="Renamed", actor=STAFF)

    assert Customer.objects.get(pk=customer.pk).name == "Renamed"
