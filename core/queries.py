"""Filters for reading hundreds of rows by id at once (the billing run's chunks).

Django's `pk__in=[...]` prepares each id through the field and psycopg then adapts and quotes
each one, in Python: for a chunk's 500 ids that costs more than the query itself. `any_of`
sends them as ONE array literal instead: `field = ANY('{1,2,3}'::bigint[])`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import F, Lookup

from core.bulk import array_literal


def any_of(field: str, ids: Iterable[int]) -> AnyOf:
    """A filter: `field` (an integer column, such as a pk or a foreign key) is one of `ids`."""
    return AnyOf(F(field), _int_array(ids))


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, self.rhs]


def _int_array(ids: Iterable[int]) -> str:
    values = list(ids)
    for value in values:
        if type(value) is not int:  # not a bool, not a str that looks like a number
            raise TypeError(f"any_of takes integer ids, not {value!r}")
    return array_literal(values)
