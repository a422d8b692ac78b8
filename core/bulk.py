"""Set-based writes Django's ORM has no fast form for (see each function for why).

`bulk_update` sends one `CASE WHEN pk = ... THEN ...` per row and field, and `bulk_create` one
placeholder per value: for the hundreds of rows of a billing-run chunk, building and binding
those statements costs more than the rest of the work. Here a chunk's rows travel as one JSON
document per statement (`insert_rows`, `insert_values`, `update_rows`), or a column as one
array literal (`array_literal`): one short statement whatever the number of rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache

import orjson
import psycopg
from django.db import connection, models
from django.db.backends.utils import CursorWrapper


def array_literal(values: Sequence[object]) -> str:
    """The PostgreSQL array literal of `values` (None is NULL, the others their str), for a
    `%s::type[]` parameter.

    psycopg adapts a list element by element in Python (about 5 ms for a batch of 500
    three-line ledger entries, as long as PostgreSQL takes to insert them); one string is
    adapted at once.
    """
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


def update_rows(rows: Sequence[models.Model], fields: Sequence[str]) -> int:
    """Write `fields` of `rows` (instances of one model) in one UPDATE; returns the rows
    updated. Plain columns only, no JSON ones.

    The values are what `get_db_prep_save` makes of them, as the ORM writes them. They travel
    as ONE JSON document (a list of `[pk, value, ...]`, in their JSON or ISO/str forms), each
    read back with a cast to its column's type: psycopg would adapt an array per column one
    element at a time, in Python. A value of another type (floats, durations, bytes...) sends
    the arrays all the same.
    """
    if not rows:
        return 0
    sql, array_sql, columns = _update_plan(type(rows[0]), tuple(fields))
    values: list[list[object]] = []
    try:
        for field, attname, as_is in columns:
            column = []
            for row in rows:
                value = getattr(row, attname)
                # The types whose prepared value is the value itself skip the field's calls.
                check = as_is.get(type(value))
                if check is None or (check and not _prepared_as_is(value)):
                    value = field.get_db_prep_save(value, connection)
                    if not (
                        type(value) in _JSON_READY
                        or type(value) in _AS_ISO
                        or isinstance(value, str | int)
                    ):
                        raise _NotJSON
                column.append(value)
            values.append(column)
        document = orjson.dumps(list(zip(*values, strict=True)), default=_decimal_str).decode()
    except (_NotJSON, orjson.JSONEncodeError):
        return _update_arrays(rows, array_sql, columns)
    with _bound_cursor() as cursor:
        cursor.execute(sql, [document])
        return cursor.rowcount


def _update_arrays(
    rows: Sequence[models.Model], sql: str, columns: Sequence[tuple[models.Field, str, object]]
) -> int:
    params = [
        [field.get_db_prep_save(getattr(row, attname), connection) for row in rows]
        for field, attname, _ in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class _NotJSON(Exception):
    """A value JSON does not carry as psycopg would (update_rows falls back to arrays)."""


# The prepared values the document carries, and how: as they are (str and int subclasses too,
# as their plain values: enum members, psycopg's Int4...), or in ISO/str form, as psycopg
# writes them. Floats are not among them: orjson writes NaN as null.
_JSON_READY = frozenset({str, int, bool, type(None)})
_AS_ISO = frozenset({Decimal, date, datetime, time, uuid.UUID})


def _decimal_str(value: object) -> str:
    if type(value) is Decimal:
        return str(value)
    raise TypeError


def _prepared_as_is(value: object) -> bool:
    """Whether a Decimal or datetime prepares to itself: it is finite, it is aware."""
    if isinstance(value, Decimal):
        return value.is_finite()
    if isinstance(value, datetime):
        return value.utcoffset() is not None
    return True


# Per field class, the value types `get_db_prep_save` returns unchanged on PostgreSQL (or as
# an int wrapper for integers), each with whether the value must be checked first. Exact
# classes only: a subclass may prepare its own way.
_AsIs = dict[type, bool]
_AS_IS_BY_FIELD: dict[type[models.Field], _AsIs] = {
    models.CharField: {str: False, type(None): False},
    models.TextField: {str: False, type(None): False},
    models.BooleanField: {bool: False, type(None): False},
    models.DateField: {date: False, type(None): False},
    models.DateTimeField: {datetime: True, type(None): False},
    models.DecimalField: {Decimal: True, type(None): False},
    **{
        kind: {int: False, type(None): False}
        for kind in (
            models.AutoField,
            models.BigAutoField,
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveSmallIntegerField,
            models.PositiveBigIntegerField,
        )
    },
}


@cache
def _update_plan(
    model: type[models.Model], fields: tuple[str, ...]
) -> tuple[str, str, list[tuple[models.Field, str, _AsIs]]]:
    """The UPDATE from a JSON document, the one from arrays, and per column (pk first) its
    field, attname and the value types it writes as they are."""
    meta = model._meta
    columns: list[models.Field] = []
    for field in [meta.pk, *(meta.get_field(name) for name in fields)]:
        if not isinstance(field, models.Field) or isinstance(field, models.JSONField):
            raise ValueError(f"update_rows writes plain columns only, not {field}")
        columns.append(field)
    names = [connection.ops.quote_name(field.column) for field in columns]
    types = [field.db_type(connection) or "text" for field in columns]
    table = connection.ops.quote_name(meta.db_table)
    # The casts are explicit, as the arrays' were: a value too long for a varchar(n) is cut.
    sql = (
        f"UPDATE {table} AS t SET "  # noqa: S608 - names come from the model
        + ", ".join(
            f"{name} = (r.e->>{position})::{db_type}"
            for position, (name, db_type) in enumerate(zip(names, types, strict=True))
            if position
        )
        + f" FROM jsonb_array_elements(%s::jsonb) AS r(e) "
        f"WHERE t.{names[0]} = (r.e->>0)::{types[0]}"
    )
    array_sql = (
        f"UPDATE {table} AS t SET "  # noqa: S608 - names come from the model
        + ", ".join(f"{name} = r.{name}" for name in names[1:])
        + " FROM unnest("
        + ", ".join(f"%s::{db_type}[]" for db_type in types)
        + f") AS r({', '.join(names)}) WHERE t.{names[0]} = r.{names[0]}"
    )
    plan = [(field, field.attname, _as_is_types(field)) for field in columns]
    return sql, array_sql, plan


def _as_is_types(field: models.Field) -> _AsIs:
    if type(field) is models.ForeignKey:  # its value is prepared by the field it points to
        return _AS_IS_BY_FIELD.get(type(field.target_field), {})
    return _AS_IS_BY_FIELD.get(type(field), {})


def insert_rows(rows: Sequence[models.Model]) -> None:
    """`bulk_create` in one statement, for the many rows of a billing-run chunk; sets their pks.

    Every column is written, the pk too when every row has one already (ids taken ahead, as a
    batch of invoices does, so that their lines can point at them), else PostgreSQL gives them.
    Dates, times and decimals travel as their ISO/str forms (see `insert_values`, which callers
    with plain values rather than instances use directly).
    """
    if not rows:
        return
    model = type(rows[0])
    if all(row.pk is not None for row in rows):
        attnames = (model._meta.pk.attname, *_insert_attnames(model))
        insert_values(model, attnames, _values(rows, attnames))
    else:
        attnames = _insert_attnames(model)
        pks = insert_values(model, attnames, _values(rows, attnames), returning=True)
        for row, pk in zip(rows, pks, strict=True):
            row.pk = pk
    for row in rows:
        row._state.adding = False


def _values(rows: Sequence[models.Model], attnames: Sequence[str]) -> list[list[object]]:
    return [[_json_value(getattr(row, attname)) for attname in attnames] for row in rows]


class JSONText:
    """A value already encoded as JSON (UTF-8), for `insert_values` to place as it is: an
    event's payload is encoded once when it is checked, not once more in the document."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded


def insert_values(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    returning: bool = False,
) -> list[int]:
    """Insert `rows` (one value per name of `columns`, in that order) into `model`'s table;
    with `returning`, the new pks in the rows' order.

    Django's bulk insert sends one array per column; psycopg escapes each JSON text of such an
    array with a regular expression per quote character, which dominates a billing-run chunk.
    Here the rows travel as ONE JSON document, a list of lists, that PostgreSQL unpacks
    (`jsonb_array_elements`), escaped once by libpq. Values must be what JSON holds: dates,
    times and decimals as their ISO/str forms, JSON columns' values as they are or `JSONText`.
    """
    if not rows:
        return []
    sql = _insert_sql(model, tuple(columns), returning)
    with _bound_cursor() as cursor:
        cursor.execute(sql, [_document(rows)])
        return [pk for (pk,) in cursor.fetchall()] if returning else []


def _bound_cursor() -> CursorWrapper:
    """A cursor that sends its parameters apart from the statement (server-side binding): a
    JSON document of a megabyte is neither escaped into the SQL nor read again by PostgreSQL's
    lexer. Django's wrapper counts and logs the statement like any other; the connection
    prepares no statement (Django's prepare_threshold), so poolers are unaffected."""
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    # (django-stubs has these take the wrapper they make, not the driver's cursor.)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)  # type: ignore[arg-type]
    return connection.make_cursor(cursor)  # type: ignore[arg-type]


def _document(rows: Sequence[Sequence[object]]) -> str:
    try:
        return orjson.dumps(
            rows,
            default=_orjson_default,
            option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS,
        ).decode()
    except orjson.JSONEncodeError:
        # What orjson refuses but json takes (integers past 64 bits, keys that are not str),
        # or what neither takes, failing with json's own error: the same document either way.
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _orjson_default(value: object) -> object:
    if type(value) is JSONText:
        return orjson.Fragment(value.encoded)
    raise TypeError


def _json_default(value: object) -> object:
    if type(value) is JSONText:
        return json.loads(value.encoded)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@cache
def _insert_attnames(model: type[models.Model]) -> tuple[str, ...]:
    meta = model._meta
    return tuple(field.attname for field in meta.concrete_fields if field is not meta.pk)


@cache
def _insert_sql(model: type[models.Model], columns: tuple[str, ...], returning: bool) -> str:
    meta = model._meta
    fields: list[models.Field] = []
    for name in columns:
        field = meta.get_field(name)
        if not isinstance(field, models.Field):
            raise ValueError(f"insert_values writes columns only, not {field}")
        fields.append(field)
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    values = ", ".join(_element(field, position) for position, field in enumerate(fields))
    table = connection.ops.quote_name(meta.db_table)
    if not returning:
        # A function scan yields the elements in the list's order, so the ids follow it too.
        return (
            f"INSERT INTO {table} ({names}) "  # noqa: S608 - names come from the model
            f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r(e)"
        )
    return (
        f"INSERT INTO {table} ({names}) "  # noqa: S608 - names come from the model
        f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(e, n) "
        f"ORDER BY r.n RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )


def _element(field: models.Field, position: int) -> str:
    """The SQL reading `field`'s value, the `position`th item of a row `r.e`."""
    if isinstance(field, models.JSONField):
        return f"NULLIF(r.e->{position}, 'null'::jsonb)"  # JSON null is SQL NULL, as ever
    db_type = field.db_type(connection) or "text"
    if db_type.endswith("]"):
        raise ValueError(f"insert_values writes no arrays, not {field}")
    if db_type == "text" or db_type.startswith(("varchar", "char")):
        # Assigned without a cast: a cast to varchar(n) would cut a value that is too long,
        # where the assignment refuses it.
        return f"r.e->>{position}"
    return f"(r.e->>{position})::{db_type}"


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value
