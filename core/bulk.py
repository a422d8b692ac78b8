"""Set-based writes Django's ORM has no fast form for.

`bulk_update` sends one `CASE WHEN pk = ... THEN ...` per row and field: for the hundreds of rows
of a billing-run chunk, building and planning that statement costs more than the rest of the
work. `update_rows` sends the new values as one array per column instead, joined on the primary
key: one short statement whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def update_rows(rows: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write `fields` of `rows` (instances of one model) in one UPDATE; returns the rows
    updated. Plain columns only (no JSON: its values travel as arrays of text)."""
    if not rows:
        return 0
    meta = type(rows[0])._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    for field in columns:
        if isinstance(field, models.JSONField) or not field.concrete:
            raise ValueError(f"update_rows writes plain columns only, not {field.name}")
    names = [connection.ops.quote_name(field.column) for field in columns]  # type: ignore[union-attr]
    types = [field.db_type(connection) or "text" for field in columns]  # type: ignore[union-attr]
    table = connection.ops.quote_name(meta.db_table)
    sql = (
        f"UPDATE {table} AS t SET "  # noqa: S608 - names come from the model
        + ", ".join(f"{name} = r.{name}" for name in names[1:])
        + " FROM unnest("
        + ", ".join(f"%s::{db_type}[]" for db_type in types)
        + f") AS r({', '.join(names)}) WHERE t.{names[0]} = r.{names[0]}"
    )
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for row in rows]  # type: ignore[union-attr]
        for field in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
