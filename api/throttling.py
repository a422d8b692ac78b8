from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from api.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    """A fixed one-minute window per API key, counted atomically in the shared cache (Redis).

    Uses wall-clock time on purpose: rate limits protect servers, they are not billing time.
    """

    window_seconds = 60

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        limit = key.rate_limit_per_minute or settings.API_DEFAULT_RATE_LIMIT_PER_MINUTE
        now = time.time()
        window = int(now // self.window_seconds)
        cache_key = f"ratelimit:{key.pk}:{window}"
        cache.add(cache_key, 0, timeout=self.window_seconds + 5)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=self.window_seconds + 5)
            count = 1
        if count > limit:
            self._wait = self.window_seconds - (now % self.window_seconds)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
