"""Celery entry points of the notifications: a service does the work; safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.notifications.services import notifications_send_due


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def notification_send_due() -> dict[str, int]:
    """Every five minutes (django-celery-beat): retries of refused emails, and emails whose
    sender died mid-send. The mail server's refusals are the service's business (its own
    retry schedule); Celery retries only the database's transient failures."""
    return notifications_send_due()
