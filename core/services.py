from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

from django.db import connection, models, transaction
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

from core import clock
from core.actors import Actor
from core.bulk import insert_rows, insert_values
from core.errors import ConflictError, ValidationError
from core.middleware import current_request_id
from core.models import AuditLog, TestClock
from core.selectors import test_clock_now


def audit_snapshot(instance: models.Model) -> dict[str, Any]:
    """A JSON-safe picture of a model instance for the audit log's before/after.

    Every stored field is in it, including the ones forms never edit (`editable=False`, auto
    timestamps), which `model_to_dict` would silently leave out; relations appear as ids.
    """
    names, attnames, read = _snapshot_plan(type(instance))
    try:
        values = read(instance.__dict__)
    except KeyError:  # a deferred field (reading it loads it), or a descriptor of its own
        values = tuple(getattr(instance, attname) for attname in attnames)
    # Most values go as they are: a billing run's chunk takes a dozen snapshots per renewal.
    snapshot = {
        name: value if type(value) in _AS_IS else _json_safe(value)
        for name, value in zip(names, values, strict=True)
    }
    opts = instance._meta
    if opts.many_to_many and instance.pk is not None:
        for field in opts.many_to_many:
            snapshot[field.name] = _json_safe(field.value_from_object(instance))
    return snapshot


_Reader = Callable[[dict[str, Any]], tuple[Any, ...]]
_snapshot_plans: dict[type[models.Model], tuple[tuple[str, ...], tuple[str, ...], _Reader]] = {}
# The attributes whose value is the instance's `__dict__` entry once loaded.
_PLAIN_DESCRIPTORS = frozenset({DeferredAttribute, ForeignKeyDeferredAttribute})


def _snapshot_plan(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...], _Reader]:
    """A model's stored fields' names and attnames, and a reader of all their values at once
    from an instance's `__dict__` (raising KeyError when `getattr` must read them)."""
    plan = _snapshot_plans.get(model)
    if plan is None:
        fields = model._meta.concrete_fields
        attnames = tuple(field.attname for field in fields)
        plain = all(
            type(inspect.getattr_static(model, attname, None)) in _PLAIN_DESCRIPTORS
            for attname in attnames
        )
        read = _reader(attnames) if plain else _unreadable
        plan = _snapshot_plans[model] = (tuple(field.name for field in fields), attnames, read)
    return plan


def _reader(attnames: tuple[str, ...]) -> _Reader:
    if len(attnames) == 1:  # the itemgetter of one key gives the value, not a 1-tuple
        (attname,) = attnames
        return lambda values: (values[attname],)
    return itemgetter(*attnames)


def _unreadable(values: dict[str, Any]) -> tuple[Any, ...]:
    raise KeyError


# The types whose values go as they are; the str and int subclasses met (enum members) join.
_AS_IS = {str, int, bool, type(None)}
# Exactly these types become their str() (a datetime's str has a space, not isoformat's T).
_AS_STR = frozenset({Decimal, date, datetime, time, timedelta, uuid.UUID})


def _json_safe(value: Any) -> Any:
    if type(value) in _AS_IS:
        return value
    if type(value) is datetime:
        return _datetime_str(value)
    if type(value) in _AS_STR:
        return str(value)
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, bool | int | str):  # subclasses (enum members)
        kind = type(value)
        # Every value of this type takes this branch, unless it lies about its class.
        if (
            issubclass(kind, int | str)
            and not issubclass(kind, models.Model)
            and all("__class__" not in vars(base) for base in kind.__mro__[:-1])
        ):
            _AS_IS.add(kind)
        return value
    return str(value)


_datetime_strs: dict[tuple[datetime, Any, int], str] = {}


def _datetime_str(value: datetime) -> str:
    """`str(value)`, remembered: it costs a microsecond for an aware datetime, and a chunk's
    snapshots share a few instants (the clock's now, the period boundaries).

    Two datetimes equal as instants may differ in their str (another offset, another fold),
    so the key holds the tzinfo and the fold too: equal keys then mean equal wall times.
    """
    key = (value, value.tzinfo, value.fold)
    try:
        text = _datetime_strs.get(key)
    except TypeError:  # a tzinfo that cannot be hashed
        return str(value)
    if text is None:
        if len(_datetime_strs) >= 10_000:
            _datetime_strs.clear()
        text = _datetime_strs[key] = str(value)
    return text


def audit_record(
    *,
    actor: Actor,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    spec = AuditSpec(action, instance, before=before, after=after)
    (values,) = _audit_values(actor=actor, records=[spec], occurred_at=clock.now())
    entry = AuditLog(**dict(zip(_AUDIT_COLUMNS, values, strict=True)))
    insert_rows([entry])
    return entry


@dataclass(frozen=True, slots=True)
class AuditSpec:
    """One audit entry of a batch: what was done to which instance, before and after."""

    action: str
    instance: models.Model
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def audit_record_bulk(*, actor: Actor, records: Sequence[AuditSpec]) -> None:
    """Audit many actions of one actor at once (the same moment, one insert).

    The entries go straight from values to rows, no `AuditLog` instance each: nothing reads
    them back (a billing-run chunk writes thousands).
    """
    occurred_at = clock.now().isoformat()
    insert_values(
        AuditLog,
        _AUDIT_COLUMNS,
        _audit_values(actor=actor, records=records, occurred_at=occurred_at),
    )


_AUDIT_COLUMNS = (
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "request_id",
)


def _audit_values(
    *, actor: Actor, records: Sequence[AuditSpec], occurred_at: object
) -> list[tuple[object, ...]]:
    """Each entry's values, in the order of `_AUDIT_COLUMNS`."""
    request_id = current_request_id()
    actor_type, actor_id, actor_label = actor.type, actor.id, actor.label[:200]
    return [
        (
            occurred_at,
            actor_type,
            actor_id,
            actor_label,
            record.action,
            record.instance._meta.label_lower,
            str(record.instance.pk),
            str(record.instance)[:200],
            record.before,
            record.after,
            request_id,
        )
        for record in records
    ]


# A fixed id for the PostgreSQL advisory lock that lets one test clock advance run at a time.
_TEST_CLOCK_ADVANCE_LOCK = 0x7E57C10C


@transaction.atomic
def test_clock_set(*, to: datetime) -> datetime:
    """Put the test clock at `to` (forwards or backwards; for tests and demo resets).

    A harness, not a business write: it runs no daily work and leaves no audit entry, so a
    test's own audit assertions see only what the code under test did.
    """
    clock.require_test_mode()
    if to.tzinfo is None:
        raise ValidationError("The time must carry a timezone.", param="to")
    TestClock.objects.update_or_create(id=1, defaults={"frozen_time": to})
    return to


@contextmanager
def _test_clock_advance_lock() -> Iterator[None]:
    # Two advances at once would both run the work of the days they cross. The advance spans
    # many transactions (one per work item and day), so a session-level advisory lock guards it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_TEST_CLOCK_ADVANCE_LOCK])
        (acquired,) = cursor.fetchone()
    if not acquired:
        raise ConflictError(
            "The test clock is being advanced by another request; try again when it is done.",
            code="test_clock_busy",
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_TEST_CLOCK_ADVANCE_LOCK])


def test_clock_advance(*, to: datetime, actor: Actor) -> dict[str, Any]:
    """Move the test clock forward to `to`, performing each day's due work on the way.

    For every UTC day boundary crossed, in order, the clock is set to that midnight and the
    registered daily work runs (in registration order); each work function opens its own
    transactions, so a year can be played through in one call. If a work function fails, the
    clock goes back to the last moment whose work is complete (the previous midnight, or where
    it started) and the error propagates: a retry runs the failed day again, which daily work
    allows (it is safe to run twice).
    """
    clock.require_test_mode()
    if to.tzinfo is None:
        raise ValidationError("The target time must carry a timezone.", param="to")
    with _test_clock_advance_lock():
        start = test_clock_now()
        if to < start:
            raise ValidationError(
                "The test clock only moves forward.", code="clock_backwards", param="to"
            )
        days: list[dict[str, Any]] = []
        day = start.astimezone(UTC).date()
        target_day = to.astimezone(UTC).date()
        reached, completed = start, False
        try:
            while day < target_day:
                day += timedelta(days=1)
                days.append(_run_day(day))
                reached = _midnight(day)
            reached, completed = to, True
        finally:
            with transaction.atomic():
                test_clock, _ = TestClock.objects.update_or_create(
                    id=1, defaults={"frozen_time": reached}
                )
                if completed or reached != start:
                    audit_record(
                        actor=actor,
                        action="test_clock.advance",
                        instance=test_clock,
                        before={"frozen_time": start.isoformat()},
                        after={"frozen_time": reached.isoformat()},
                    )
    return {"from": start, "to": to, "days": [d for d in days if d["work"]]}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _run_day(day: date) -> dict[str, Any]:
    with transaction.atomic():
        TestClock.objects.update_or_create(id=1, defaults={"frozen_time": _midnight(day)})
    work: dict[str, dict[str, int]] = {}
    for name, run in clock.daily_work().items():
        result = run(day)
        if any(result.values()):
            work[name] = result
    return {"date": day.isoformat(), "work": work}
