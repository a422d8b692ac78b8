"""Celery entry points of the webhooks: ids in, a service does the work; safe to run twice.

The HTTP outcome of a delivery is the service's business (its own retry schedule, kept in the
database so it survives restarts); Celery retries only this platform's own transient failures
(the database, the mail server).
"""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.webhooks.services import (
    webhook_deliver,
    webhook_dispatch_due,
    webhook_endpoint_notify_disabled,
    webhook_events_prune,
)

_INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)
# Deliveries the sweeper queues per pass, and passes per run: a backlog drains over a few runs
# instead of one long transaction.
_SWEEP_BATCH = 500
_SWEEP_PASSES = 20


@shared_task(
    acks_late=True,
    autoretry_for=_INFRASTRUCTURE_ERRORS,
    retry_backoff=True,
    max_retries=5,
)
def deliver_webhook(delivery_id: int) -> str:
    """Make the due attempt of one delivery (nothing if it is not due or is being sent)."""
    delivery = webhook_deliver(delivery_id=delivery_id)
    return "skipped" if delivery is None else delivery.status


@shared_task(acks_late=True, autoretry_for=_INFRASTRUCTURE_ERRORS, retry_backoff=True)
def webhook_retry_due() -> int:
    """Every minute (django-celery-beat): queue the deliveries whose attempt has come."""
    queued = 0
    for _ in range(_SWEEP_PASSES):
        batch = webhook_dispatch_due(limit=_SWEEP_BATCH)
        queued += len(batch)
        if len(batch) < _SWEEP_BATCH:
            break
    return queued


@shared_task(
    acks_late=True,
    autoretry_for=(*_INFRASTRUCTURE_ERRORS, smtplib.SMTPException, ConnectionError),
    retry_backoff=True,
    max_retries=8,
)
def notify_webhook_endpoint_disabled(endpoint_id: int) -> bool:
    """Email that an endpoint was disabled for failing (once per disabling)."""
    return webhook_endpoint_notify_disabled(endpoint_id=endpoint_id)


@shared_task(acks_late=True, autoretry_for=_INFRASTRUCTURE_ERRORS, retry_backoff=True)
def webhook_events_prune_old() -> int:
    """Daily (django-celery-beat): delete settled outbox events past their retention."""
    return webhook_events_prune()
