"""Delivering: the signed request a receiver gets, the retry schedule on the platform clock, the
delivery log, abandonment, and the sweeper that queues due attempts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.webhooks.services import (
    event_emit,
    webhook_deliver,
    webhook_dispatch_due,
    webhook_endpoint_roll_secret,
)
from core.webhooks.tasks import webhook_retry_due
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import STAFF, Receiver
from tests.webhooks.verification import verify_webhook

pytestmark = pytest.mark.django_db


def _emit(type_: str = EventType.INVOICE_PAID, **payload: Any) -> OutboxEvent:
    return event_emit(type=type_, payload=payload or {"id": 1}, customer_id=None)


def _sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def test_the_request_carries_the_event_and_a_signature_the_receiver_can_verify(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint = make_endpoint()
    event = _emit(EventType.INVOICE_PAID, id=17, total="19.99", currency="USD")
    delivery = WebhookDelivery.objects.get(event=event)
    before = int(time.time())

    result = webhook_deliver(delivery_id=delivery.pk)

    assert result is not None
    assert result.status == WebhookDelivery.Status.SUCCEEDED
    (request,) = receiver.requests
    assert request.path == "/hooks"
    assert json.loads(request.body) == {
        "id": event.public_id,
        "type": "invoice.paid",
        "created": int(FIXED_NOW.timestamp()),
        "data": {"id": 17, "total": "19.99", "currency": "USD"},
    }
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "SubscriptionPlatform-Webhooks/1.0"
    assert headers["Webhook-Id"] == event.public_id
    # The signature's time is the real time, not the (frozen) platform clock.
    timestamp = int(headers["Webhook-Timestamp"])
    assert before <= timestamp <= int(time.time())
    assert headers["Webhook-Signature"] == _sign(endpoint.secret, timestamp, request.body)
    assert verify_webhook(request.body, headers["Webhook-Signature"], endpoint.secret)


def test_the_verifier_refuses_a_changed_body_a_wrong_secret_and_a_stale_timestamp(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint = make_endpoint()
    webhook_deliver(delivery_id=WebhookDelivery.objects.get(event=_emit()).pk)
    (request,) = receiver.requests
    header = request.headers["Webhook-Signature"]
    now = int(time.time())

    assert verify_webhook(request.body, header, endpoint.secret)
    assert not verify_webhook(request.body.replace(b'"id":1', b'"id":2'), header, endpoint.secret)
    assert not verify_webhook(request.body, header, "whsec_someone-else")
    assert not verify_webhook(request.body, "v1=" + header.split("v1=")[1], endpoint.secret)
    # Correctly signed, but more than 5 minutes old (or ahead): a replay.
    stale = _sign(endpoint.secret, now - 301, request.body)
    assert not verify_webhook(request.body, stale, endpoint.secret)
    ahead = _sign(endpoint.secret, now + 301, request.body)
    assert not verify_webhook(request.body, ahead, endpoint.secret)
    recent = _sign(endpoint.secret, now - 290, request.body)
    assert verify_webhook(request.body, recent, endpoint.secret)


def test_a_failing_endpoint_is_retried_on_the_schedule_with_every_attempt_logged(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE = [60, 300, 1800]
    endpoint = make_endpoint()
    receiver.respond(500, 500)  # then 200
    receiver.response_body = b"upstream exploded"
    delivery = WebhookDelivery.objects.get(event=_emit())

    first = webhook_deliver(delivery_id=delivery.pk)

    assert first is not None
    assert first.status == WebhookDelivery.Status.RETRYING
    assert first.attempt_count == 1
    assert first.next_attempt_at == FIXED_NOW + timedelta(seconds=60)
    assert first.last_response_status == 500
    assert first.last_error == "The endpoint answered HTTP 500."
    # Not due yet: neither the sweeper nor a stray task sends it.
    clock(FIXED_NOW + timedelta(seconds=59))
    assert webhook_dispatch_due() == []
    assert webhook_deliver(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1

    clock(FIXED_NOW + timedelta(seconds=60))
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_retry_due() == 1  # the sweeper queues it; eager Celery sends it

    second = WebhookDelivery.objects.get(pk=delivery.pk)
    assert second.status == WebhookDelivery.Status.RETRYING
    assert second.attempt_count == 2
    assert second.next_attempt_at == FIXED_NOW + timedelta(seconds=60 + 300)

    clock(FIXED_NOW + timedelta(seconds=360))
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_retry_due() == 1

    done = WebhookDelivery.objects.get(pk=delivery.pk)
    assert done.status == WebhookDelivery.Status.SUCCEEDED
    assert done.attempt_count == 3
    assert done.succeeded_at == FIXED_NOW + timedelta(seconds=360)
    assert done.next_attempt_at is None
    assert len(receiver.requests) == 3
    log = list(done.attempts.values_list("attempt_number", "response_status", "attempted_at"))
    assert log == [
        (1, 500, FIXED_NOW),
        (2, 500, FIXED_NOW + timedelta(seconds=60)),
        (3, 200, FIXED_NOW + timedelta(seconds=360)),
    ]
    failed = done.attempts.get(attempt_number=1)
    assert failed.response_excerpt == "upstream exploded"
    assert failed.succeeded is False
    assert failed.url == endpoint.url
    assert failed.request_headers["Webhook-Id"] == done.event.public_id
    assert endpoint.secret not in json.dumps(failed.request_headers)
    # Each attempt is signed afresh: the same body, its own timestamp.
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0
    assert endpoint.failing_since is None


def test_the_default_schedule_is_1m_5m_30m_2h_12h_24h_then_the_delivery_is_abandoned(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    make_endpoint()
    receiver.respond(*[503] * 7)
    delivery = WebhookDelivery.objects.get(event=_emit())
    now = FIXED_NOW
    waits = []

    for _ in range(6):
        webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == WebhookDelivery.Status.RETRYING
        assert delivery.next_attempt_at is not None
        waits.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at
        clock(now)
    webhook_deliver(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert waits == [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=12),
        timedelta(hours=24),
    ]
    assert delivery.status == WebhookDelivery.Status.ABANDONED
    assert delivery.attempt_count == 7
    assert delivery.next_attempt_at is None
    assert len(receiver.requests) == 7
    # Abandoned is final: nothing queues or sends it again, however late it gets.
    clock(now + timedelta(days=30))
    assert webhook_dispatch_due() == []
    assert webhook_deliver(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 7


@pytest.mark.parametrize("status", [301, 302, 400, 404, 410, 500])
def test_any_answer_but_2xx_is_a_failure_and_redirects_are_not_followed(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver, status: int
) -> None:
    make_endpoint()
    receiver.respond(status)
    delivery = WebhookDelivery.objects.get(event=_emit())

    result = webhook_deliver(delivery_id=delivery.pk)

    assert result is not None
    assert result.status == WebhookDelivery.Status.RETRYING
    assert result.last_response_status == status
    assert [r.path for r in receiver.requests] == ["/hooks"]  # never /elsewhere


def test_an_unreachable_endpoint_is_a_failure_with_the_error_logged(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint(url="http://127.0.0.1:9/nothing-listens-here")
    delivery = WebhookDelivery.objects.get(event=_emit())

    result = webhook_deliver(delivery_id=delivery.pk)

    assert result is not None
    assert result.status == WebhookDelivery.Status.RETRYING
    assert result.last_response_status is None
    assert result.last_error.startswith("Connection failed:")
    attempt = result.attempts.get()
    assert attempt.response_status is None
    assert attempt.error == result.last_error


def test_a_slow_endpoint_times_out(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    make_endpoint()
    receiver.delay = 1.5
    delivery = WebhookDelivery.objects.get(event=_emit())

    result = webhook_deliver(delivery_id=delivery.pk)

    assert result is not None
    assert result.status == WebhookDelivery.Status.RETRYING
    assert result.last_error == "No response within 1 seconds."
    assert 1000 <= result.attempts.get().duration_ms < 1500


def test_a_long_answer_is_kept_as_an_excerpt(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint()
    receiver.respond(500)
    receiver.response_body = b"x" * 100_000
    delivery = WebhookDelivery.objects.get(event=_emit())

    result = webhook_deliver(delivery_id=delivery.pk)

    assert result is not None
    assert result.last_response_excerpt == "x" * 2048
    assert result.attempts.get().response_excerpt == "x" * 2048


def test_after_a_roll_with_a_grace_period_both_secrets_sign_until_it_ends(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
) -> None:
    endpoint = make_endpoint()
    old_secret = endpoint.secret
    endpoint = webhook_endpoint_roll_secret(
        endpoint=endpoint, keep_previous_for=timedelta(hours=2), actor=STAFF
    )

    webhook_deliver(delivery_id=WebhookDelivery.objects.get(event=_emit()).pk)
    clock(FIXED_NOW + timedelta(hours=2))
    webhook_deliver(delivery_id=WebhookDelivery.objects.get(event=_emit()).pk)

    during, after = receiver.requests
    assert during.headers["Webhook-Signature"].count("v1=") == 2
    assert verify_webhook(during.body, during.headers["Webhook-Signature"], endpoint.secret)
    assert verify_webhook(during.body, during.headers["Webhook-Signature"], old_secret)
    assert after.headers["Webhook-Signature"].count("v1=") == 1
    assert verify_webhook(after.body, after.headers["Webhook-Signature"], endpoint.secret)
    assert not verify_webhook(after.body, after.headers["Webhook-Signature"], old_secret)


def test_the_sweeper_requeues_a_first_attempt_whose_task_was_lost(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    settings: Any,
) -> None:
    settings.WEBHOOK_REDISPATCH_AFTER_SECONDS = 300
    make_endpoint()
    fresh = WebhookDelivery.objects.get(event=_emit())
    lost = WebhookDelivery.objects.get(event=_emit())
    assert fresh.dispatched_at is not None
    # Queued six minutes ago (wall clock) and never run: the broker lost the task.
    WebhookDelivery.objects.filter(pk=lost.pk).update(
        dispatched_at=fresh.dispatched_at - timedelta(minutes=6)
    )

    queued = webhook_dispatch_due()

    assert queued == [lost.pk]  # the fresh one's task is still on its way
    lost.refresh_from_db()
    assert lost.dispatched_at is not None
    assert lost.dispatched_at > fresh.dispatched_at
    assert webhook_dispatch_due() == []  # and not queued again at once


def test_a_delivery_that_is_not_due_or_does_not_exist_is_skipped(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint()
    delivery = WebhookDelivery.objects.get(event=_emit())
    webhook_deliver(delivery_id=delivery.pk)

    assert webhook_deliver(delivery_id=delivery.pk) is None  # already succeeded
    assert webhook_deliver(delivery_id=999_999) is None
    assert len(receiver.requests) == 1
