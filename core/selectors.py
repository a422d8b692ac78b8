from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from core.models import AuditLog, TestClock


def test_clock_now() -> datetime:
    clock = TestClock.objects.filter(id=1).only("frozen_time").first()
    if clock is None:
        # First read: start the test clock at the real time, truncated to the second.
        clock, _ = TestClock.objects.get_or_create(
            id=1, defaults={"frozen_time": timezone.now().replace(microsecond=0)}
        )
    return clock.frozen_time


def audit_log_for(*, object_type: str, object_id: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(object_type=object_type, object_id=object_id))


def audit_log_list(
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    request_id: str | None = None,
    actor_type: str | None = None,
    actor_id: str | None = None,
) -> QuerySet[AuditLog]:
    """Audit entries matching every given filter exactly, newest (last written) first."""
    filters = {
        "object_type": object_type,
        "object_id": object_id,
        "action": action,
        "request_id": request_id,
        "actor_type": actor_type,
        "actor_id": actor_id,
    }
    return AuditLog.objects.filter(
        **{field: value for field, value in filters.items() if value is not None}
    ).order_by("-id")
