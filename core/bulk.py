"""Set-based writes Django's ORM has no fast form for (see each function for why).

`bulk_update` sends one `CASE WHEN pk = ... THEN ...` per row and field: for the hundreds of rows
of a billing-run chunk, building and planning that statement costs more than the rest of the
work. `update_rows` sends the new values as one array per column instead, joined on the primary
key: one short statement whatever the number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from django.db import connection, models


def update_rows(rows: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write `fields` of `rows` (instances of one model) in one UPDATE; returns the rows
    updated. Plain columns only (no JSON: its values travel as arrays of text)."""
    if not rows:
        return 0
    meta = type(rows[0])._meta
    columns: list[models.Field] = []
    for field in [meta.pk, *(meta.get_field(name) for name in fields)]:
        if not isinstance(field, models.Field) or isinstance(field, models.JSONField):
            raise ValueError(f"update_rows writes plain columns only, not {field}")
        columns.append(field)
    names = [connection.ops.quote_name(field.column) for field in columns]
    types = [field.db_type(connection) or "text" for field in columns]
    table = connection.ops.quote_name(meta.db_table)
    sql = (
        f"UPDATE {table} AS t SET "  # noqa: S608 - names come from the model
        + ", ".join(f"{name} = r.{name}" for name in names[1:])
        + " FROM unnest("
        + ", ".join(f"%s::{db_type}[]" for db_type in types)
        + f") AS r({', '.join(names)}) WHERE t.{names[0]} = r.{names[0]}"
    )
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows]
        for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def insert_rows(rows: Sequence[models.Model]) -> None:
    """`bulk_create` for rows heavy with JSON (audit entries, outbox events), sets their pks.

    Django's bulk insert sends one array per column; psycopg escapes each JSON text of such an
    array with a regular expression per quote character, which dominates a billing-run chunk.
    Here the rows travel as ONE JSON document that PostgreSQL unpacks (`jsonb_to_recordset`),
    escaped once by libpq. Plain values only: dates, times and decimals as their ISO/str forms.
    """
    if not rows:
        return
    meta = type(rows[0])._meta
    columns = [field for field in meta.concrete_fields if field is not meta.pk]
    names = [connection.ops.quote_name(field.column) for field in columns]
    types = [field.db_type(connection) or "text" for field in columns]
    document = json.dumps(
        [
            {field.column: _json_value(field.value_from_object(row)) for field in columns}
            for row in rows
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    table = connection.ops.quote_name(meta.db_table)
    record = ", ".join(f"{name} {db_type}" for name, db_type in zip(names, types, strict=True))
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 - names come from the model
        f"SELECT {', '.join(f'r.{name}' for name in names)} "
        f"FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({record})) "
        f"WITH ORDINALITY AS r({', '.join(names)}, n) "
        f"ORDER BY r.n RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row.pk = pk
            row._state.adding = False


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value
