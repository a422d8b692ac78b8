"""Rate limits per API key: 429 with Retry-After, and one key never throttles another."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from core import clock as platform_clock
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db


def _assert_throttled(response: Any) -> int:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])  # whole seconds, as HTTP wants
    # Three requests this minute, limit 3: the next fits once the sliding window has moved
    # 20 seconds into the next minute, so at most 60 + 20 seconds from now.
    assert 1 <= retry_after <= 81
    assert response.json()["error"] == {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "message": f"Too many requests; retry in {retry_after} seconds.",
        "param": None,
    }
    return retry_after


def test_the_call_over_the_limit_is_refused_with_retry_after(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    client = api_client_for(scopes=["admin"], rate_limit_per_minute=3)

    allowed = [client.get("/api/v1/test_clock").status_code for _ in range(3)]
    refused = client.get("/api/v1/test_clock")

    assert allowed == [200, 200, 200]
    _assert_throttled(refused)
    _assert_throttled(client.get("/api/v1/test_clock"))


def test_a_throttled_write_does_nothing(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    client = api_client_for(scopes=["admin"], rate_limit_per_minute=3)
    for _ in range(3):
        client.get("/api/v1/test_clock")

    response = client.post(
        "/api/v1/test_clock/advance", {"to": "2026-02-01T00:00:00Z"}, format="json"
    )

    _assert_throttled(response)
    assert platform_clock.now() == FIXED_NOW


def test_one_exhausted_key_does_not_throttle_another(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    greedy = api_client_for(scopes=["read"], rate_limit_per_minute=3)
    polite = api_client_for(scopes=["read"], rate_limit_per_minute=3)
    for _ in range(3):
        greedy.get("/api/v1/test_clock")
    _assert_throttled(greedy.get("/api/v1/test_clock"))

    responses = [polite.get("/api/v1/test_clock").status_code for _ in range(3)]

    assert responses == [200, 200, 200]
    _assert_throttled(greedy.get("/api/v1/test_clock"))


def test_keys_without_their_own_limit_use_the_default(
    api_client_for: Callable[..., APIClient], clock: Any, settings: Any
) -> None:
    settings.API_DEFAULT_RATE_LIMIT_PER_MINUTE = 3
    client = api_client_for(scopes=["read"])

    statuses = [client.get("/api/v1/test_clock").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_the_limit_counts_every_endpoint_of_the_key(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    client = api_client_for(scopes=["admin"], rate_limit_per_minute=3)
    client.get("/api/v1/test_clock")
    client.get("/api/v1/audit_log")
    client.post("/api/v1/test_clock/advance", {"to": "2026-01-16T00:00:00Z"}, format="json")

    _assert_throttled(client.get("/api/v1/audit_log"))
    assert platform_clock.now() == datetime(2026, 1, 16, tzinfo=UTC)


def test_the_previous_minute_still_counts_so_a_burst_cannot_double_at_the_turn(
    make_api_key: Callable[..., Any],
    clock: Any,
) -> None:
    key, plaintext = make_api_key(scopes=["read"], rate_limit_per_minute=3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    elapsed = time.time() % 60
    if 19 < elapsed < 21 or elapsed > 59:  # too close to a boundary of this check to tell
        time.sleep(2.5)
        elapsed = time.time() % 60
    # Given: the full allowance was used in the previous minute.
    window = int(time.time() // 60)
    cache.set(f"ratelimit:{key.pk}:{window - 1}", 3, timeout=180)

    response = client.get("/api/v1/test_clock")

    # The previous minute weighs (60 - elapsed) / 60: 1 + 3 * that exceeds 3 until 20 s in.
    if elapsed < 20:
        assert response.status_code == 429
        # The throttle read the time a moment after `elapsed`: allow it one second less.
        assert int(response["Retry-After"]) in {max(1, math.ceil(20 - elapsed) - d) for d in (0, 1)}
    else:
        assert response.status_code == 200
