from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.forms.models import model_to_dict

from core import clock
from core.actors import Actor
from core.errors import NotFoundError, ValidationError
from core.middleware import current_request_id
from core.models import AuditLog, TestClock
from core.selectors import test_clock_now


def audit_snapshot(instance: models.Model) -> dict[str, Any]:
    """A JSON-safe picture of a model instance for the audit log's before/after."""
    data = model_to_dict(instance)
    return {key: _json_safe(value) for key, value in data.items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, models.Model):
        return value.pk
    if value is None or isinstance(value, bool | int | str):
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
    return AuditLog.objects.create(
        occurred_at=clock.now(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        action=action,
        object_type=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        before=before,
        after=after,
        request_id=current_request_id(),
    )


def _require_test_mode() -> None:
    if not settings.TEST_MODE:
        raise NotFoundError("The test clock exists only in TEST_MODE.", code="test_mode_off")


@transaction.atomic
def test_clock_set(*, to: datetime) -> datetime:
    """Put the test clock at `to` (forwards or backwards; for tests and demo resets)."""
    _require_test_mode()
    if to.tzinfo is None:
        raise ValidationError("The time must carry a timezone.", param="to")
    TestClock.objects.update_or_create(id=1, defaults={"frozen_time": to})
    return to


def test_clock_advance(*, to: datetime, actor: Actor) -> dict[str, Any]:
    """Move the test clock forward to `to`, performing each day's due work on the way.

    The registered daily work runs for every UTC day boundary crossed, in order, each day in
    its own transaction, so a year can be played through in one call.
    """
    _require_test_mode()
    if to.tzinfo is None:
        raise ValidationError("The target time must carry a timezone.", param="to")
    with transaction.atomic():
        current = TestClock.objects.select_for_update().filter(id=1).first()
        start = current.frozen_time if current else test_clock_now()
    if to < start:
        raise ValidationError(
            "The test clock only moves forward.", code="clock_backwards", param="to"
        )
    days: list[dict[str, Any]] = []
    day = start.astimezone(UTC).date()
    target_day = to.astimezone(UTC).date()
    while day < target_day:
        day += timedelta(days=1)
        moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        days.append(_run_day(day, moment, actor))
    with transaction.atomic():
        TestClock.objects.update_or_create(id=1, defaults={"frozen_time": to})
        audit_record(
            actor=actor,
            action="test_clock.advance",
            instance=TestClock.objects.get(id=1),
            before={"frozen_time": start.isoformat()},
            after={"frozen_time": to.isoformat()},
        )
    return {"from": start, "to": to, "days": [d for d in days if d["work"]]}


def _run_day(day: date, moment: datetime, actor: Actor) -> dict[str, Any]:
    with transaction.atomic():
        TestClock.objects.update_or_create(id=1, defaults={"frozen_time": moment})
    work: dict[str, dict[str, int]] = {}
    for name, run in clock.daily_work().items():
        result = run(day)
        if any(result.values()):
            work[name] = result
    return {"date": day.isoformat(), "work": work}
