"""API read path: GET /api/v1/test_clock against a bare Django view returning the same JSON.

Both go through Django's test client and the full middleware stack and read the same stored
clock, so the ratio is the price of the API layer itself: DRF, API-key authentication (a hashed
key lookup), scope check, the Redis-backed rate limit and the serializer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import Client, override_settings
from django.urls import include, path

from api.services import api_key_create
from bench.harness import Sample, measure, merge
from core import clock
from core.actors import SYSTEM
from core.services import test_clock_set

API_PATH = "/api/v1/test_clock"
BASELINE_PATH = "/bench/test_clock"
WARMUP = 200
ROUNDS = 5
PER_ROUND = 400  # per variant and round: 2,000 measured requests each, interleaved


def baseline_test_clock(request: HttpRequest) -> JsonResponse:
    now = clock.now()
    return JsonResponse(
        {"now": now.isoformat().replace("+00:00", "Z"), "today": clock.today().isoformat()}
    )


# This module is the URLconf while the benchmark runs: the platform's URLs plus the baseline.
urlpatterns = [
    path(BASELINE_PATH.lstrip("/"), baseline_test_clock),
    path("", include("config.urls")),
]


def _table(samples: list[Sample]) -> str:
    rows = [f"  {'':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"]
    rows += [
        f"  {s.label:<34}{s.per_second:>9.0f}{s.percentile_ms(50):>9.3f}{s.percentile_ms(99):>9.3f}"
        for s in samples
    ]
    return "\n".join(rows)


def run() -> None:
    # The benchmark's rate-limit counters must never mix with a real key's in a shared Redis.
    cache = {**settings.CACHES["default"], "KEY_PREFIX": "bench-api-read"}
    with override_settings(ROOT_URLCONF=__name__, TEST_MODE=True, CACHES={"default": cache}):
        _compare()


def _compare() -> None:
    test_clock_set(to=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    _, plaintext = api_key_create(
        name="bench api_read", scopes=["read"], actor=SYSTEM, rate_limit_per_minute=10_000_000
    )
    api = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    baseline = Client()

    def get_api() -> None:
        response = api.get(API_PATH)
        assert response.status_code == 200, response.content

    def get_baseline() -> None:
        response = baseline.get(BASELINE_PATH)
        assert response.status_code == 200, response.content

    api_body, baseline_body = api.get(API_PATH).json(), baseline.get(BASELINE_PATH).json()
    assert api_body == baseline_body == {"now": "2026-01-15T12:00:00Z", "today": "2026-01-15"}
    measure("warm-up", get_baseline, WARMUP)
    measure("warm-up", get_api, WARMUP)

    baseline_rounds, api_rounds = [], []
    for _ in range(ROUNDS):  # interleaved, so drift in the machine's speed hits both alike
        baseline_rounds.append(measure("baseline", get_baseline, PER_ROUND))
        api_rounds.append(measure("api", get_api, PER_ROUND))
    base = merge("baseline: bare Django view", baseline_rounds)
    api_sample = merge("API: DRF + key auth + rate limit", api_rounds)

    print(
        f"\napi_read: GET {API_PATH} vs a bare view with the same JSON, Django test client, "
        f"{len(base.durations_ns)} requests each after {WARMUP} warm-up"
    )
    print(_table([base, api_sample]))
    print(
        f"  API / baseline: throughput {api_sample.per_second / base.per_second:.2f}x, "
        f"p50 {api_sample.percentile_ms(50) / base.percentile_ms(50):.2f}x, "
        f"p99 {api_sample.percentile_ms(99) / base.percentile_ms(99):.2f}x\n",
        flush=True,
    )
