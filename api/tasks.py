"""Celery entry points of the API: housekeeping, safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from api.services import idempotency_records_purge


@shared_task(acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=True)
def idempotency_records_purge_expired() -> int:
    """Every day (django-celery-beat): drop the expired Idempotency-Key records."""
    return idempotency_records_purge()
