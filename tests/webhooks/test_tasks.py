"""The Celery side: thin tasks calling the services, and the sweeper's schedule in
django-celery-beat."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from core.webhooks.events import EventType
from core.webhooks.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.services import event_emit
from core.webhooks.tasks import deliver_webhook, notify_webhook_endpoint_disabled, webhook_retry_due
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db


def test_the_sweeper_runs_every_minute_from_the_database_schedule() -> None:
    task = PeriodicTask.objects.get(task="core.webhooks.tasks.webhook_retry_due")

    assert task.enabled is True
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (1, IntervalSchedule.MINUTES)
    assert task.name == "webhooks: send due deliveries and retries"


def test_the_tasks_are_registered_on_the_platform_app_and_acknowledged_late() -> None:
    celery_app.loader.import_default_modules()

    for task in (deliver_webhook, webhook_retry_due, notify_webhook_endpoint_disabled):
        assert task.name in celery_app.tasks
        assert celery_app.tasks[task.name].acks_late is True
    assert deliver_webhook.name == "core.webhooks.tasks.deliver_webhook"
    # Only the platform's own transient failures are retried by Celery; HTTP outcomes are not.
    registered = celery_app.tasks[deliver_webhook.name]
    assert getattr(registered, "autoretry_for", None) == (OperationalError, InterfaceError)


def test_the_delivery_task_reports_what_the_service_did(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint()
    receiver.respond(500)
    delivery = WebhookDelivery.objects.get(
        event=event_emit(type=EventType.CREDIT_NOTE_CREATED, payload={"id": 3})
    )

    assert deliver_webhook.delay(delivery.pk).get() == "retrying"
    assert deliver_webhook.delay(delivery.pk).get() == "skipped"  # not due again yet
    assert len(receiver.requests) == 1


def test_the_sweeper_task_counts_what_it_queued(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    make_endpoint()
    receiver.respond(500, 500)
    for n in range(2):
        delivery = WebhookDelivery.objects.get(
            event=event_emit(type=EventType.CREDIT_NOTE_CREATED, payload={"id": n})
        )
        deliver_webhook.delay(delivery.pk)
    assert webhook_retry_due.delay().get() == 0  # both retries are a minute away

    clock(FIXED_NOW + timedelta(minutes=1))

    assert webhook_retry_due.delay().get() == 2
    assert webhook_retry_due.delay().get() == 0  # queued already: their tasks are on the way
