"""The interactions log: recording contacts, newest first, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from core.actors import Actor
from core.errors import NotFoundError, ValidationError
from core.models import AuditLog
from customers.models import Customer, Interaction
from customers.selectors import interactions_for
from customers.services import interaction_record
from tests.customers.conftest import STAFF

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def test_a_staff_member_records_a_call(make_customer: Callable[..., Customer]) -> None:
    customer = make_customer()
    user = get_user_model().objects.create_user(username="carol", password="x" * 12)

    interaction = interaction_record(
        customer=customer,
        channel="phone",
        note="  Asked about the annual plan.  ",
        actor=Actor.user(user),
        author=user,
    )

    stored = Interaction.objects.get(pk=interaction.pk)
    assert stored.customer_id == customer.pk
    assert stored.channel == "phone"
    assert stored.note == "Asked about the annual plan."
    assert stored.author_id == user.pk
    assert stored.author_label == "carol"
    assert stored.occurred_at == NOW
    entry = AuditLog.objects.get(action="interaction.create")
    assert entry.actor_label == "carol"
    assert entry.object_id == str(interaction.pk)
    assert entry.after is not None
    assert entry.after["note"] == "Asked about the annual plan."
    assert entry.after["customer"] == customer.pk


def test_a_past_contact_keeps_its_time_and_the_log_reads_newest_first(
    make_customer: Callable[..., Customer],
) -> None:
    customer = make_customer()
    other = make_customer()
    recent = interaction_record(customer=customer, channel="chat", note="Recent", actor=STAFF)
    older = interaction_record(
        customer=customer,
        channel="email",
        note="Logged late",
        occurred_at=NOW - timedelta(days=3),
        actor=STAFF,
    )
    interaction_record(customer=other, channel="note", note="Someone else", actor=STAFF)

    history = list(interactions_for(customer=customer))

    assert [i.pk for i in history] == [recent.pk, older.pk]
    assert history[1].occurred_at == datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
    assert history[1].author_label == "alice"
    assert history[1].author is None


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"channel": "fax"}, "invalid_channel", "channel"),
        ({"note": "   "}, "note_required", "note"),
        ({"note": "x" * 10_001}, "note_too_long", "note"),
        ({"occurred_at": NOW + timedelta(seconds=1)}, "occurred_in_future", "occurred_at"),
        ({"occurred_at": datetime(2026, 1, 1, 9, 0)}, "invalid_occurred_at", "occurred_at"),  # noqa: DTZ001
    ],
)
def test_bad_interactions_are_refused_and_nothing_is_written(
    make_customer: Callable[..., Customer], fields: dict[str, Any], code: str, param: str
) -> None:
    customer = make_customer()

    with pytest.raises(ValidationError) as error:
        interaction_record(
            **{"channel": "phone", "note": "Hi", **fields}, customer=customer, actor=STAFF
        )

    assert (error.value.code, error.value.param) == (code, param)
    assert Interaction.objects.count() == 0
    assert not AuditLog.objects.filter(action="interaction.create").exists()


def test_a_partner_cannot_log_on_another_partners_customer(
    make_customer: Callable[..., Customer], make_partner: Callable[..., Any]
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    customer = make_customer(partner=globex)

    with pytest.raises(NotFoundError) as error:
        interaction_record(
            customer=customer, channel="note", note="Hi", actor=STAFF, partner_scope=acme
        )

    assert error.value.code == "customer_not_found"
    assert Interaction.objects.count() == 0
