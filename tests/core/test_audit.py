"""The audit log: snapshots, entries, and the audited Django admin base."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.admin import AdminSite
from django.contrib.auth.models import User
from django.db.models import ProtectedError
from django.test import RequestFactory

from api.models import ApiKey
from core.actors import SYSTEM, Actor
from core.admin import AuditedModelAdmin
from core.models import AuditLog
from core.models import TestClock as StoredClock
from core.selectors import audit_log_for
from core.services import audit_record, audit_snapshot
from customers.models import Partner
from customers.services import partner_create

pytestmark = pytest.mark.django_db


def test_a_snapshot_holds_every_stored_field_json_safe(
    clock: Callable[[datetime], datetime],
) -> None:
    partner = partner_create(code="acme", name="Acme", actor=SYSTEM)
    key = ApiKey.objects.create(
        name="k",
        prefix="sk_test_abcdefgh",
        key_hash="0" * 64,
        scopes=["read", "write"],
        partner=partner,
        created_at=datetime(2026, 1, 15, 12, tzinfo=UTC),
    )

    snapshot = audit_snapshot(key)

    assert snapshot == {
        "id": key.pk,
        "name": "k",
        "prefix": "sk_test_abcdefgh",
        "key_hash": "0" * 64,
        "scopes": ["read", "write"],
        "partner": partner.pk,
        "rate_limit_per_minute": None,
        "created_by": None,
        "created_at": "2026-01-15 12:00:00+00:00",
        "last_used_at": None,
        "revoked_at": None,
    }


def test_a_snapshot_keeps_fields_forms_never_edit(clock: Any) -> None:
    stored = StoredClock.objects.get(id=1)

    snapshot = audit_snapshot(stored)

    # `id` is editable=False and `updated_at` auto_now: model_to_dict would drop both.
    assert snapshot["id"] == 1
    assert snapshot["frozen_time"] == "2026-01-15 12:00:00+00:00"
    assert snapshot["updated_at"] == str(stored.updated_at)


def test_an_entry_is_stamped_with_the_platform_clock_and_no_request_outside_one(
    clock: Callable[[datetime], datetime],
) -> None:
    clock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    stored = StoredClock.objects.get(id=1)
    actor = Actor(type=AuditLog.ActorType.CUSTOMER, id="42", label="x" * 250)

    entry = audit_record(
        actor=actor, action="clock.inspect", instance=stored, before={"a": 1}, after={"a": 2}
    )

    entry.refresh_from_db()
    assert entry.occurred_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert (entry.actor_type, entry.actor_id) == ("customer", "42")
    assert entry.actor_label == "x" * 200
    assert (entry.object_type, entry.object_id) == ("core.testclock", "1")
    assert entry.object_repr == "test clock at 2026-03-01T09:30:00+00:00"
    assert (entry.before, entry.after) == ({"a": 1}, {"a": 2})
    assert entry.request_id == ""
    assert audit_log_for(object_type="core.testclock", object_id="1") == [entry]


# --- the audited admin -----------------------------------------------------------------------


@pytest.fixture
def staff_request(db: None) -> Any:
    user = User.objects.create(username="ops", is_staff=True, is_superuser=True)
    request = RequestFactory().post("/admin/")
    request.user = user
    return request


@pytest.fixture
def partner_admin() -> AuditedModelAdmin:
    return AuditedModelAdmin(Partner, AdminSite())


def _staff_entries() -> list[tuple[str, Any, Any]]:
    return [
        (e.action, e.before, e.after)
        for e in AuditLog.objects.filter(actor_type="user").order_by("id")
    ]


def test_an_admin_change_is_audited_with_before_and_after(
    clock: Any, staff_request: Any, partner_admin: AuditedModelAdmin
) -> None:
    partner = partner_create(code="acme", name="Acme", actor=SYSTEM)
    partner.name = "Acme Resellers"

    partner_admin.save_model(staff_request, partner, form=None, change=True)

    [(action, before, after)] = _staff_entries()
    assert action == "partner.update"
    assert before["name"] == "Acme"
    assert after["name"] == "Acme Resellers"
    entry = AuditLog.objects.get(actor_type="user")
    assert (entry.actor_id, entry.actor_label) == (str(staff_request.user.pk), "ops")


def test_a_refused_bulk_delete_leaves_no_entry_and_deletes_nothing(
    clock: Any,
    staff_request: Any,
    partner_admin: AuditedModelAdmin,
    make_api_key: Callable[..., tuple[ApiKey, str]],
) -> None:
    partner_create(code="free", name="Free", actor=SYSTEM)
    protected = partner_create(code="held", name="Held", actor=SYSTEM)
    make_api_key(scopes=["read"], partner=protected)  # PROTECTs the partner

    with pytest.raises(ProtectedError):
        partner_admin.delete_queryset(staff_request, Partner.objects.order_by("code"))

    assert set(Partner.objects.values_list("code", flat=True)) == {"free", "held"}
    assert _staff_entries() == []


def test_an_admin_delete_is_audited_with_the_last_state(
    clock: Any, staff_request: Any, partner_admin: AuditedModelAdmin
) -> None:
    partner = partner_create(code="gone", name="Gone", actor=SYSTEM)
    partner_id = partner.pk

    partner_admin.delete_model(staff_request, partner)

    assert not Partner.objects.filter(pk=partner_id).exists()
    [(action, before, after)] = _staff_entries()
    assert action == "partner.delete"
    assert before["code"] == "gone"
    assert after is None
