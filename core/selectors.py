from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from core.models import AuditLog, TestClock


def test_clock_now() -> datetime:
    # Every clock read in TEST_MODE comes here (a billing-run chunk asks a dozen times), so the
    # row is read with one plain statement rather than through a queryset.
    with connection.cursor() as cursor:
        cursor.execute(_READ_TEST_CLOCK)
        row = cursor.fetchone()
    if row is not None:
        frozen_time: datetime = row[0]
        return frozen_time
    # First read: start the test clock at the real time, truncated to the second.
    clock, _ = TestClock.objects.get_or_create(
        id=1, defaults={"frozen_time": timezone.now().replace(microsecond=0)}
    )
    return clock.frozen_time


_READ_TEST_CLOCK = f"SELECT frozen_time FROM {TestClock._meta.db_table} WHERE id = 1"  # noqa: S608


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
