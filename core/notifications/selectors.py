"""Reads of the notification log, for the doors and for the apps that send notices."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from core.errors import NotFoundError
from core.notifications.models import Notification


def notification_list(
    *,
    kind: str | None = None,
    customer_id: int | None = None,
    status: str | None = None,
    related_type: str | None = None,
    related_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Notification]:
    """The log narrowed by every given filter; `created_after` inclusive, `created_before`
    exclusive. Unordered: callers (the API's cursor pagination) order it."""
    notifications = Notification.objects.all()
    if kind is not None:
        notifications = notifications.filter(kind=kind)
    if customer_id is not None:
        notifications = notifications.filter(customer_id=customer_id)
    if status is not None:
        notifications = notifications.filter(status=status)
    if related_type is not None:
        notifications = notifications.filter(related_type=related_type)
    if related_id is not None:
        notifications = notifications.filter(related_id=related_id)
    if created_after is not None:
        notifications = notifications.filter(created_at__gte=created_after)
    if created_before is not None:
        notifications = notifications.filter(created_at__lt=created_before)
    return notifications


def notification_get(*, pk: int | str) -> Notification:
    try:
        return Notification.objects.get(pk=int(pk))
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such notification: {pk}.", code="notification_not_found", param="id"
        ) from None


def notification_dedupe_keys_taken(*, keys: Iterable[str]) -> set[str]:
    """Which of `keys` already have a notification (sent, being sent or failed): a cheap
    pre-check for bulk senders. The unique key still decides when a send races another."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    return set(
        Notification.objects.filter(dedupe_key__in=wanted).values_list("dedupe_key", flat=True)
    )
