"""Celery entry points of payments: a service does the work; safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from billing.services.payments import payment_attempts_sweep as sweep


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def payment_attempts_sweep() -> dict[str, int]:
    """Every 10 minutes (django-celery-beat): settle the charges workers that died mid-charge
    left behind (attempts pending past PAYMENT_ATTEMPT_STALE_MINUTES, autocharge invoices never
    attempted) and the outcomes left unknown that long. Each attempt is settled once under its
    lock, so a second run does nothing."""
    return sweep()
