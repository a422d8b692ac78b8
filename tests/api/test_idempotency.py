"""Idempotency-Key on POST: replay, conflicts, in-flight requests, released and expired keys."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import ApiKey, IdempotencyRecord
from core import clock as platform_clock
from core.models import AuditLog

pytestmark = pytest.mark.django_db

ADVANCE = "/api/v1/test_clock/advance"
Register = Callable[[str, platform_clock.DailyWork], None]


def _client(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def _advance(client: APIClient, to: str, key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(ADVANCE, {"to": to}, format="json", headers=headers)


def _advances() -> int:
    return AuditLog.objects.filter(action="test_clock.advance").count()


def _counting(days: list[date]) -> platform_clock.DailyWork:
    def work(day: date) -> dict[str, int]:
        days.append(day)
        return {"runs": 1}

    return work


def test_the_same_key_and_body_replays_the_first_response(
    api: APIClient, daily_work: Register
) -> None:
    days: list[date] = []
    daily_work("count", _counting(days))
    first = _advance(api, "2026-01-17T00:00:00Z", "key-1")

    again = _advance(api, "2026-01-17T00:00:00Z", "key-1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert days == [date(2026, 1, 16), date(2026, 1, 17)]  # the work ran once
    assert _advances() == 1


def test_the_same_key_with_another_body_is_a_conflict(api: APIClient) -> None:
    _advance(api, "2026-01-17T00:00:00Z", "key-1")

    response = _advance(api, "2026-01-20T00:00:00Z", "key-1")

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "type": "idempotency_error",
            "code": "idempotency_key_reused",
            "message": (
                "This Idempotency-Key was already used with a different request; use a new key "
                "for a new request."
            ),
            "param": "Idempotency-Key",
        }
    }
    assert platform_clock.now() == datetime(2026, 1, 17, tzinfo=UTC)
    assert _advances() == 1


def test_keys_belong_to_one_api_key(
    api: APIClient, make_api_key: Callable[..., tuple[ApiKey, str]]
) -> None:
    _, other_plaintext = make_api_key(scopes=["admin"])
    _advance(api, "2026-01-17T00:00:00Z", "shared-key")

    response = _advance(_client(other_plaintext), "2026-01-20T00:00:00Z", "shared-key")

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert response.json()["now"] == "2026-01-20T00:00:00Z"
    assert IdempotencyRecord.objects.filter(key="shared-key").count() == 2


def test_a_client_error_is_stored_and_replayed(
    api: APIClient, clock: Callable[[datetime], datetime]
) -> None:
    refused = _advance(api, "2026-01-10T00:00:00Z", "key-back")
    assert refused.status_code == 400
    # The same request would succeed now; the key still answers what it answered first.
    clock(datetime(2026, 1, 1, tzinfo=UTC))

    again = _advance(api, "2026-01-10T00:00:00Z", "key-back")

    assert again.status_code == 400
    assert again.json() == refused.json()
    assert again.json()["error"]["code"] == "clock_backwards"
    assert again["Idempotent-Replayed"] == "true"
    assert platform_clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert _advances() == 0


def test_a_server_error_releases_the_key(api: APIClient, daily_work: Register) -> None:
    days: list[date] = []

    def fails_once(day: date) -> dict[str, int]:
        days.append(day)
        if len(days) == 1:
            raise RuntimeError("transient failure")
        return {"runs": 1}

    daily_work("flaky", fails_once)
    api.raise_request_exception = False

    failed = _advance(api, "2026-01-16T00:00:00Z", "key-500")
    assert failed.status_code == 500
    assert not IdempotencyRecord.objects.filter(key="key-500").exists()

    retried = _advance(api, "2026-01-16T00:00:00Z", "key-500")

    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert days == [date(2026, 1, 16), date(2026, 1, 16)]
    assert IdempotencyRecord.objects.get(key="key-500").response_status == 200


def test_an_expired_key_is_forgotten_and_a_live_one_is_not(api: APIClient, settings: Any) -> None:
    settings.API_IDEMPOTENCY_TTL_HOURS = 24
    _advance(api, "2026-01-16T00:00:00Z", "old-key")
    _advance(api, "2026-01-17T00:00:00Z", "recent-key")
    IdempotencyRecord.objects.filter(key="old-key").update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    IdempotencyRecord.objects.filter(key="recent-key").update(
        created_at=timezone.now() - timedelta(hours=23, minutes=59)
    )

    reused_old = _advance(api, "2026-01-18T00:00:00Z", "old-key")
    reused_recent = _advance(api, "2026-01-19T00:00:00Z", "recent-key")

    assert reused_old.status_code == 200
    assert "Idempotent-Replayed" not in reused_old
    assert reused_recent.status_code == 409
    assert reused_recent.json()["error"]["code"] == "idempotency_key_reused"
    assert platform_clock.now() == datetime(2026, 1, 18, tzinfo=UTC)


def test_without_a_key_nothing_is_remembered(api: APIClient) -> None:
    first = _advance(api, "2026-01-16T00:00:00Z", None)
    second = _advance(api, "2026-01-16T00:00:00Z", None)

    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second
    assert _advances() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_an_empty_or_overlong_key_is_refused(api: APIClient, key: str) -> None:
    response = _advance(api, "2026-01-16T00:00:00Z", key)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_idempotency_key",
        "message": "An Idempotency-Key is 1 to 255 characters.",
        "param": "Idempotency-Key",
    }
    assert platform_clock.now() == datetime(2026, 1, 15, 12, tzinfo=UTC)


def test_a_key_of_255_characters_is_fine(api: APIClient) -> None:
    assert _advance(api, "2026-01-16T00:00:00Z", "k" * 255).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_second_request_while_the_first_is_in_flight_is_told_so(
    clock: Any,
    make_api_key: Callable[..., tuple[ApiKey, str]],
    daily_work: Register,
) -> None:
    _, plaintext = make_api_key(scopes=["admin"])
    started, release = threading.Event(), threading.Event()
    days: list[date] = []

    def slow(day: date) -> dict[str, int]:
        days.append(day)
        started.set()
        release.wait(timeout=30)
        return {"runs": 1}

    daily_work("slow", slow)
    first: list[Any] = []

    def first_request() -> None:
        try:
            first.append(_advance(_client(plaintext), "2026-01-16T00:00:00Z", "key-slow"))
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert started.wait(timeout=30)

        same_key = _advance(_client(plaintext), "2026-01-16T00:00:00Z", "key-slow")
        other_key = _advance(_client(plaintext), "2026-01-16T00:00:00Z", "key-other")
    finally:
        release.set()
        thread.join(timeout=30)

    assert same_key.status_code == 409
    assert same_key.json()["error"] == {
        "type": "idempotency_error",
        "code": "idempotency_in_progress",
        "message": "A request with this Idempotency-Key is still being processed; retry later.",
        "param": "Idempotency-Key",
    }
    # Another key reaches the service, which lets one advance run at a time.
    assert other_key.status_code == 409
    assert other_key.json()["error"]["code"] == "test_clock_busy"
    assert first[0].status_code == 200
    assert days == [date(2026, 1, 16)]

    after = _advance(_client(plaintext), "2026-01-16T00:00:00Z", "key-slow")

    assert after.status_code == 200
    assert after["Idempotent-Replayed"] == "true"
    assert after.json() == first[0].json()
    assert days == [date(2026, 1, 16)]
    assert _advances() == 1
    # The clash was not kept as the other key's answer: retried, that request now runs.
    retried = _advance(_client(plaintext), "2026-01-16T00:00:00Z", "key-other")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert retried.json()["advanced_from"] == "2026-01-16T00:00:00Z"
    assert _advances() == 2
