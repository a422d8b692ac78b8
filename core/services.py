from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, models, transaction

from core import clock
from core.actors import Actor
from core.bulk import insert_rows
from core.errors import ConflictError, ValidationError
from core.middleware import current_request_id
from core.models import AuditLog, TestClock
from core.selectors import test_clock_now


def audit_snapshot(instance: models.Model) -> dict[str, Any]:
    """A JSON-safe picture of a model instance for the audit log's before/after.

    Every stored field is in it, including the ones forms never edit (`editable=False`, auto
    timestamps), which `model_to_dict` would silently leave out; relations appear as ids.
    """
    opts = instance._meta
    snapshot = {
        field.name: _json_safe(getattr(instance, field.attname)) for field in opts.concrete_fields
    }
    if opts.many_to_many and instance.pk is not None:
        for field in opts.many_to_many:
            snapshot[field.name] = _json_safe(field.value_from_object(instance))
    return snapshot


_AS_IS = frozenset({str, int, bool, type(None)})


def _json_safe(value: Any) -> Any:
    if type(value) in _AS_IS:  # most values: the audit snapshots of a billing run's chunk
        return value
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, bool | int | str):  # subclasses (enum members)
        return value
    return str(value)


def audit_record(
    *,
    actor: Actor,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    return audit_record_bulk(
        actor=actor, records=[AuditSpec(action, instance, before=before, after=after)]
    )[0]


@dataclass(frozen=True, slots=True)
class AuditSpec:
    """One audit entry of a batch: what was done to which instance, before and after."""

    action: str
    instance: models.Model
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def audit_record_bulk(*, actor: Actor, records: Sequence[AuditSpec]) -> list[AuditLog]:
    """Audit many actions of one actor at once (the same moment, one insert)."""
    now, request_id = clock.now(), current_request_id()
    entries = [
        AuditLog(
            occurred_at=now,
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=actor.label[:200],
            action=record.action,
            object_type=record.instance._meta.label_lower,
            object_id=str(record.instance.pk),
            object_repr=str(record.instance)[:200],
            before=record.before,
            after=record.after,
            request_id=request_id,
        )
        for record in records
    ]
    insert_rows(entries)
    return entries


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
