"""Celery entry point of revenue recognition: the daily run, idempotent per day."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from billing.ledger.recognition import recognition_daily_work
from core import clock


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def recognition_run_daily() -> dict[str, int]:
    """Every day (django-celery-beat): recognize every day up to and including yesterday.
    Days already booked are skipped (one entry per currency and day), so twice is once."""
    return recognition_daily_work(clock.today())
