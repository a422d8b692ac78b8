"""insert_rows keeps the ids rows already have (taken ahead from the sequence)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.forms.models import model_to_dict

from core.bulk import insert_rows
from core.models import AuditLog

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _entry(n: int) -> AuditLog:
    return AuditLog(
        occurred_at=NOW,
        actor_type=AuditLog.ActorType.SYSTEM,
        actor_label="test",
        action="thing.do",
        object_type="thing",
        object_id=str(n),
        before={"n": n - 1},
        after={"n": n, "note": 'ünïcode "quoted"'},
    )


def _new_ids(count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [AuditLog._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def test_rows_with_ids_are_stored_under_those_ids_exactly_as_bulk_create_stores_them() -> None:
    # given three entries with ids taken ahead, in reverse order, and the same three for the ORM
    ids = list(reversed(_new_ids(3)))
    rows = [_entry(n) for n in range(3)]
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
    expected = AuditLog.objects.bulk_create([_entry(n) for n in range(3)])

    # when inserted
    insert_rows(rows)

    # then each is stored under its id, with the ORM's values, and is no longer "adding"
    for row, pk, twin in zip(rows, ids, expected, strict=True):
        stored = AuditLog.objects.get(pk=pk)
        assert row.pk == pk
        assert not row._state.adding
        assert {**model_to_dict(stored), "id": None} == {
            **model_to_dict(AuditLog.objects.get(pk=twin.pk)),
            "id": None,
        }


def test_rows_without_ids_get_new_ones_in_order() -> None:
    rows = [_entry(n) for n in range(3)]
    insert_rows(rows)
    assert [row.pk for row in rows] == sorted(row.pk for row in rows)
    assert [AuditLog.objects.get(pk=row.pk).object_id for row in rows] == ["0", "1", "2"]
