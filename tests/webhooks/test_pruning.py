"""Old outbox events are pruned once settled, with their deliveries and attempts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookDeliveryAttempt
from core.webhooks.services import event_emit, webhook_events_prune
from core.webhooks.tasks import deliver_webhook, webhook_events_prune_old
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db


def _emit(n: int) -> OutboxEvent:
    return event_emit(type=EventType.CREDIT_NOTE_CREATED, payload={"id": n})


def test_settled_events_past_retention_go_with_their_deliveries_and_waiting_ones_stay(
    make_endpoint: Callable[..., Any],
    receiver: Receiver,
    clock: Callable[..., Any],
    settings: Any,
) -> None:
    # given, on Jan 15: an event before any endpoint, one delivered, one still retrying
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 90
    undelivered = _emit(1)
    make_endpoint()
    delivered, retrying = _emit(2), _emit(3)
    receiver.respond(500)
    deliver_webhook.delay(WebhookDelivery.objects.get(event=retrying).pk)
    deliver_webhook.delay(WebhookDelivery.objects.get(event=delivered).pk)
    assert WebhookDelivery.objects.get(event=delivered).status == "succeeded"
    assert WebhookDelivery.objects.get(event=retrying).status == "retrying"

    # and 91 days later, a new event
    clock(FIXED_NOW + timedelta(days=91))
    recent = _emit(4)

    # when old events are pruned
    pruned = webhook_events_prune()

    # then the settled old ones are gone with their deliveries and attempts
    assert pruned == 2
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {retrying.pk, recent.pk}
    assert not WebhookDelivery.objects.filter(event_id__in=[undelivered.pk, delivered.pk]).exists()
    assert set(WebhookDeliveryAttempt.objects.values_list("delivery__event", flat=True)) == {
        retrying.pk
    }
    # and pruning again finds nothing
    assert webhook_events_prune() == 0


def test_events_within_retention_are_kept(clock: Callable[..., Any], settings: Any) -> None:
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 90
    event = _emit(1)
    clock(FIXED_NOW + timedelta(days=89))

    assert webhook_events_prune() == 0
    assert OutboxEvent.objects.filter(pk=event.pk).exists()


def test_pruning_runs_daily_from_the_database_schedule(
    clock: Callable[..., Any], settings: Any
) -> None:
    task = PeriodicTask.objects.get(task="core.webhooks.tasks.webhook_events_prune_old")
    assert task.enabled is True
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (1, IntervalSchedule.DAYS)

    settings.WEBHOOK_EVENT_RETENTION_DAYS = 1
    _emit(1)
    clock(FIXED_NOW + timedelta(days=2))
    assert webhook_events_prune_old.delay().get() == 1
