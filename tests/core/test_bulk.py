"""`insert_values` and `insert_rows` write exactly the rows the earlier form wrote (one JSON
document of objects unpacked by `jsonb_to_recordset`, kept here as the oracle); `update_rows`
exactly what the ORM's `bulk_update` writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import DataError, connection, models, transaction
from django.test.utils import CaptureQueriesContext, isolate_apps
from django.utils.translation import gettext_lazy

from core.bulk import JSONText, insert_rows, insert_values, update_rows
from core.models import AuditLog
from core.webhooks.models import OutboxEvent

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _oracle_insert(rows: Sequence[models.Model]) -> None:
    """`insert_rows` as it was: json.dumps of a list of objects, `jsonb_to_recordset`."""
    meta = type(rows[0])._meta
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    names = [connection.ops.quote_name(field.column) for field in columns]
    types = [field.db_type(connection) or "text" for field in columns]
    document = json.dumps(
        [
            {field.column: _oracle_value(field.value_from_object(row)) for field in columns}
            for row in rows
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    table = connection.ops.quote_name(meta.db_table)
    record = ", ".join(f"{name} {db_type}" for name, db_type in zip(names, types, strict=True))
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {', '.join(f'r.{name}' for name in names)} "
        f"FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({record})) "
        f"WITH ORDINALITY AS r({', '.join(names)}, n) "
        f"ORDER BY r.n RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row.pk = pk


def _oracle_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


_TRICKY = 'quote " backslash \\ tab \t newline \n ü € 😀 \u2028 \x01 {"a":1} \'s'

AUDITS: list[dict[str, Any]] = [
    {"before": None, "after": None},
    {"before": {"a": 1, "b": [1, 2.5, None, True]}, "after": {"nested": {"x": _TRICKY}}},
    {"before": {}, "after": []},
    {"before": "a JSON string", "after": 12},
    {"before": {"float": 1e16, "small": 0.1 + 0.2, "zero": -0.0}, "after": {"deep": [[[[1]]]]}},
    {"before": {_TRICKY: _TRICKY, "neg": -(2**63)}, "after": {"null": None}},
]
# What orjson refuses and json takes: the document goes through json.
ODD: dict[str, Any] = {"before": {"big": 2**70}, "after": {1: "int key", "1.5": 1e-7}}


def _audit(number: int, before: Any, after: Any) -> AuditLog:
    return AuditLog(
        occurred_at=NOW,
        actor_type=AuditLog.ActorType.SYSTEM,
        actor_id=str(number),
        actor_label=_TRICKY,
        action="thing.do",
        object_type="core.thing",
        object_id=str(number),
        object_repr=f"thing {number} ü",
        before=before,
        after=after,
        request_id="" if number % 2 else "req-1",
    )


def _stored(model: type[models.Model], pks: Sequence[int]) -> list[tuple[Any, ...]]:
    """The rows as PostgreSQL holds them (JSON as its text), without their ids."""
    meta = model._meta
    columns = [f.column for f in meta.concrete_fields if f is not meta.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(f'{c}::text' for c in columns)} FROM {meta.db_table} "  # noqa: S608
            "WHERE id = ANY(%s) ORDER BY id",
            [list(pks)],
        )
        return cursor.fetchall()


@pytest.mark.parametrize("audits", [AUDITS, [*AUDITS, ODD]], ids=["orjson", "json"])
def test_insert_rows_writes_what_the_recordset_form_wrote(audits: list[dict[str, Any]]) -> None:
    expected = [_audit(n, **values) for n, values in enumerate(audits)]
    _oracle_insert(expected)
    written = [_audit(n, **values) for n, values in enumerate(audits)]

    insert_rows(written)

    assert [row._state.adding for row in written] == [False] * len(audits)
    assert sorted(row.pk for row in written) == [row.pk for row in written]
    assert _stored(AuditLog, [row.pk for row in written]) == _stored(
        AuditLog, [row.pk for row in expected]
    )
    written[1].refresh_from_db()
    assert written[1].after == {"nested": {"x": _TRICKY}}


def test_insert_values_writes_the_same_rows_in_the_given_order() -> None:
    expected = [_audit(n, **values) for n, values in enumerate(AUDITS)]
    _oracle_insert(expected)
    columns = [f.attname for f in AuditLog._meta.concrete_fields if f.attname != "id"]
    values = [
        [_oracle_value(getattr(row, column)) for column in columns]
        for row in [_audit(n, **values) for n, values in enumerate(AUDITS)]
    ]

    pks = insert_values(AuditLog, columns, values, returning=True)
    insert_values(AuditLog, columns, values)  # no pks asked: the same rows again

    assert pks == sorted(pks)
    again = list(AuditLog.objects.filter(pk__gt=pks[-1]).order_by("id").values_list("pk"))
    assert _stored(AuditLog, [pk for (pk,) in again]) == _stored(AuditLog, pks)
    assert _stored(AuditLog, pks) == _stored(AuditLog, [row.pk for row in expected])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_auditlog WHERE before IS NULL")
        # The first entry's, once per insert: JSON null is SQL NULL, as in the recordset form.
        assert cursor.fetchone() == (3,)
    odd = _audit(9, **ODD)
    _oracle_insert([odd])
    odd_values = [[_oracle_value(getattr(odd, column)) for column in columns]]
    (pk,) = insert_values(AuditLog, columns, odd_values, returning=True)
    assert _stored(AuditLog, [pk]) == _stored(AuditLog, [odd.pk])


def test_a_value_already_encoded_is_placed_as_it_is() -> None:
    payload = {"amount": "1.00", "text": _TRICKY, "big": 2**70}
    plain = ["evt_" + "0" * 32, "invoice.paid", payload, None, NOW.isoformat()]
    encoded = [
        "evt_" + "1" * 32,
        "invoice.paid",
        JSONText(json.dumps(payload).encode()),
        7,
        NOW.isoformat(),
    ]
    # A value orjson refuses (an integer past 64 bits) sends the document through json.
    huge = ["evt_" + "2" * 32, "invoice.paid", JSONText(b'{"n":1}'), None, NOW.isoformat()]
    columns = ["public_id", "type", "payload", "customer_id", "created_at"]

    pks = insert_values(OutboxEvent, columns, [plain, encoded], returning=True)

    events = OutboxEvent.objects.in_bulk(pks)
    assert events[pks[0]].payload == events[pks[1]].payload == payload
    assert events[pks[1]].customer_id == 7
    assert events[pks[1]].created_at == NOW
    with pytest.raises(DataError), transaction.atomic():
        insert_values(OutboxEvent, columns, [huge, [*plain[:3], 2**70, plain[4]]])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"actor_label": "x" * 201}, DataError),  # refused, never cut
        ({"before": {"x": {1, 2}}}, TypeError),
    ],
)
def test_what_the_recordset_form_refused_is_refused(
    change: dict[str, Any], error: type[Exception], clock: Callable[[datetime], datetime]
) -> None:
    for insert in (_oracle_insert, insert_rows):
        row = _audit(1, None, None)
        for name, value in change.items():
            setattr(row, name, value)
        with pytest.raises(error), transaction.atomic():
            insert([row])


def test_a_float_json_cannot_hold_is_null() -> None:
    # json wrote NaN, which PostgreSQL refused: the one document that differs, on purpose.
    row = _audit(1, {"x": float("nan"), "y": float("inf")}, None)

    insert_rows([row])

    row.refresh_from_db()
    assert row.before == {"x": None, "y": None}


# --- update_rows ---------------------------------------------------------------------------


class Shade(models.TextChoices):
    DARK = "dark", "Dark"


@pytest.fixture
def thing_model() -> Iterator[type[models.Model]]:
    """A model of every plain column kind, its table made for the test (rolled back)."""
    with isolate_apps("core"):

        class Thing(models.Model):
            label = models.CharField(max_length=5, null=True)  # noqa: DJ001 - a value too
            note = models.TextField(null=True)  # noqa: DJ001
            count = models.IntegerField(null=True)
            big = models.BigIntegerField(null=True)
            small = models.PositiveSmallIntegerField(null=True)
            flag = models.BooleanField(null=True)
            amount = models.DecimalField(max_digits=8, decimal_places=2, null=True)
            day = models.DateField(null=True)
            at = models.DateTimeField(null=True)
            clock = models.TimeField(null=True)
            token = models.UUIDField(null=True)
            ratio = models.FloatField(null=True)
            span = models.DurationField(null=True)
            entry = models.ForeignKey(AuditLog, on_delete=models.CASCADE, null=True)

            class Meta:
                app_label = "core"

            def __str__(self) -> str:
                return str(self.pk)

        with connection.schema_editor() as editor:
            editor.create_model(Thing)
        yield Thing


FIELDS = [
    "label",
    "note",
    "count",
    "big",
    "small",
    "flag",
    "amount",
    "day",
    "at",
    "clock",
    "token",
    "entry",
]
PARIS = timezone(timedelta(hours=1))
CHANGES: list[dict[str, Any]] = [
    {  # the usual types, written as they are
        "label": "abc",
        "note": _TRICKY,
        "count": 7,
        "big": 2**40,
        "small": 3,
        "flag": True,
        "amount": Decimal("12.50"),
        "day": date(2026, 2, 28),
        "at": NOW,
        "clock": time(9, 30, 15, 250),
        "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    },
    dict.fromkeys(FIELDS),  # nulls
    {  # values the fields prepare: enum members, strings of numbers, rounding, offsets
        "label": Shade.DARK,
        "note": gettext_lazy("lazy"),
        "count": "12",
        "big": Decimal("5"),
        "flag": 1,
        "amount": Decimal("1.005"),
        "day": datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
        "at": datetime(2026, 1, 15, 12, 0, 0, 999, tzinfo=PARIS),
        "clock": "09:30",
        "token": "12345678123456781234567812345678",
    },
    {"label": "too long, cut as the ORM's cast does", "amount": 3, "at": "2026-01-15T12:00Z"},
]


def _things(model: type[models.Model], entry: AuditLog) -> list[models.Model]:
    rows = [model._default_manager.create() for _ in CHANGES]
    for row, change in zip(rows, CHANGES, strict=True):
        for name, value in {"entry_id": entry.pk, **change}.items():
            setattr(row, name, value)
    return rows


def _table(model: type[models.Model]) -> list[tuple[Any, ...]]:
    meta = model._meta
    columns = ", ".join(f"{f.column}::text" for f in meta.concrete_fields if f is not meta.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {meta.db_table} ORDER BY id")  # noqa: S608
        return cursor.fetchall()


@pytest.mark.parametrize("extra", [{}, {"ratio": 0.5}, {"span": timedelta(hours=1)}])
def test_update_rows_writes_what_the_orms_bulk_update_writes(
    thing_model: type[models.Model], extra: dict[str, Any]
) -> None:
    # A float or a duration (not carried by the JSON document) sends the arrays instead.
    entry = _audit(1, None, None)
    insert_rows([entry])
    fields = [*FIELDS, *extra]
    expected = _things(thing_model, entry)
    for row in expected:
        row.__dict__.update(extra)
    thing_model._default_manager.bulk_update(expected, fields)
    oracle = _table(thing_model)
    thing_model._default_manager.all().delete()
    rows = _things(thing_model, entry)
    for row in rows:
        row.__dict__.update(extra)

    with CaptureQueriesContext(connection) as queries:
        assert update_rows(rows, fields) == len(rows)

    assert _table(thing_model) == oracle
    assert ("jsonb_array_elements" in queries[0]["sql"]) is not extra
    assert oracle[0][:3] == ("abc", _TRICKY, "7")
    assert oracle[3][0] == "too l"


def test_update_rows_refuses_what_the_orm_refuses(thing_model: type[models.Model]) -> None:
    row = thing_model._default_manager.create()
    row.count = "seven"  # type: ignore[attr-defined]

    with pytest.raises(ValueError, match="expected a number"):
        update_rows([row], ["count"])
