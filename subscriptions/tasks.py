"""Celery entry points of the billing run: ids in, a service does the work; safe to run twice.

Acknowledged late (settings: CELERY_TASK_ACKS_LATE, reject on worker lost), so a chunk whose
worker died is delivered again; the chunk's families are then re-read under their locks and
nothing is billed twice. Celery retries only transient infrastructure errors (the database
connection, the broker); a family's own failure is recorded by the run and retried next run.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from core import clock
from subscriptions import billing_run as runs
from subscriptions.dunning import dunning_process_day

TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def billing_run_chunk(run_id: int, chunk_id: int) -> dict[str, int]:
    """Process one chunk of a billing run (nothing if it is already done)."""
    run = runs.billing_run_process_chunk(run_id=run_id, chunk_id=chunk_id)
    return {"processed": run.processed, "due": run.due}


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=5,
)
def billing_run_scheduled() -> int:
    """Every hour (django-celery-beat): start a run over everything due today."""
    return runs.billing_run_scheduled().pk


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=5,
)
def dunning_run_daily() -> dict[str, int]:
    """Every day (django-celery-beat): dunning's retries, stages and final actions due today.
    Idempotent per day (retries are claimed per date), so a second run does nothing."""
    return dunning_process_day(clock.today())
