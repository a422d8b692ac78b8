"""Concurrent workers on real PostgreSQL: a delivery is sent once however many workers try, and
two sweepers never queue the same delivery. Real threads, real transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.db import close_old_connections, connection, transaction

from core.webhooks.events import EventType
from core.webhooks.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.services import event_emit, webhook_deliver, webhook_dispatch_due
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


def _run_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run each call in its own thread (and database connection), all released together."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    crashes: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except BaseException as crash:  # noqa: BLE001 - reported to the test below
            crashes.append(crash)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    assert not crashes, crashes
    return results


def _failed_once(receiver: Receiver, count: int) -> list[WebhookDelivery]:
    """Deliveries whose first attempt failed (an answer 500), due again a minute later."""
    receiver.respond(*[500] * count)
    # No transaction around it here: each event commits at once and its task (eager) makes the
    # first attempt right away.
    events = [event_emit(type=EventType.PAYMENT_FAILED, payload={"n": n}) for n in range(count)]
    deliveries = list(WebhookDelivery.objects.filter(event__in=events).order_by("id"))
    assert [d.status for d in deliveries] == [WebhookDelivery.Status.RETRYING] * count
    receiver.requests.clear()
    return deliveries


def test_workers_racing_for_one_delivery_send_it_once(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    make_endpoint()
    (delivery,) = _failed_once(receiver, 1)
    clock(FIXED_NOW + timedelta(minutes=1))
    receiver.delay = 0.5  # the first request is still in flight when the others try

    results = _run_at_once([lambda: webhook_deliver(delivery_id=delivery.pk)] * 4)

    sent = [result for result in results if result is not None]
    assert len(sent) == 1
    assert sent[0].status == WebhookDelivery.Status.SUCCEEDED
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempt_count == 2
    assert list(delivery.attempts.values_list("attempt_number", "response_status")) == [
        (1, 500),
        (2, 200),
    ]
    assert delivery.claimed_until is None


def test_sweepers_running_at_once_queue_each_due_delivery_once(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    make_endpoint()
    deliveries = _failed_once(receiver, 12)
    clock(FIXED_NOW + timedelta(minutes=1))

    batches = _run_at_once([lambda: webhook_dispatch_due(limit=5)] * 3)

    # 15 places for 12 deliveries: each is taken by exactly one sweeper, none twice.
    queued = [delivery_id for batch in batches for delivery_id in batch]
    assert sorted(queued) == [d.pk for d in deliveries]
    assert len(receiver.requests) == 12
    sent = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED)
    assert sorted(sent.values_list("id", flat=True)) == sorted(queued)


def test_a_row_lock_held_for_a_moment_delays_the_send_but_does_not_skip_it(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    """A sweeper's scan locks a row it then leaves (the row was dispatched by a sweeper that
    committed first): the worker queued for that row waits for the lock, then sends."""
    make_endpoint()
    (delivery,) = _failed_once(receiver, 1)
    clock(FIXED_NOW + timedelta(minutes=1))
    locked = threading.Event()

    def hold_lock() -> None:
        with transaction.atomic():
            WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
            locked.set()
            time.sleep(0.3)

    def deliver() -> WebhookDelivery | None:
        locked.wait(timeout=10)
        return webhook_deliver(delivery_id=delivery.pk)

    _, sent = _run_at_once([hold_lock, deliver])

    assert sent is not None
    assert sent.status == WebhookDelivery.Status.SUCCEEDED
    assert len(receiver.requests) == 1
