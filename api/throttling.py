from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from api.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    """Requests per minute per API key, as a sliding window counted in the shared cache (Redis).

    The count is this minute's requests plus the previous minute's, weighted by the share of
    the previous minute the last 60 seconds still cover. Unlike a fixed window, a burst at the
    turn of a minute is not let through twice. Refused requests do not count, so a client that
    retries after Retry-After gets in. Uses wall-clock time on purpose: rate limits protect
    servers, they are not billing time.
    """

    window_seconds = 60

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        limit = max(1, key.rate_limit_per_minute or settings.API_DEFAULT_RATE_LIMIT_PER_MINUTE)
        window, elapsed = divmod(time.time(), self.window_seconds)
        current_key = f"ratelimit:{key.pk}:{int(window)}"
        previous = int(cache.get(f"ratelimit:{key.pk}:{int(window) - 1}", 0))
        # The current counter is read as the previous one during the next window.
        cache.add(current_key, 0, timeout=2 * self.window_seconds + 5)
        try:
            current = cache.incr(current_key)
        except ValueError:  # expired between add and incr
            cache.add(current_key, 1, timeout=2 * self.window_seconds + 5)
            current = 1
        if current + previous * (1 - elapsed / self.window_seconds) <= limit:
            return True
        with suppress(ValueError):  # the counter expired meanwhile: nothing left to give back
            cache.decr(current_key)
        self._wait = self._seconds_until_allowed(current - 1, previous, elapsed, limit)
        return False

    def _seconds_until_allowed(
        self, current: int, previous: int, elapsed: float, limit: int
    ) -> float:
        """When one more request fits: the previous minute's weight has to fade enough."""
        window = self.window_seconds
        if current + 1 <= limit:
            # Later in this minute, once previous * (1 - t / window) <= limit - current - 1.
            fits_at = window * (1 - (limit - current - 1) / previous)
            return max(fits_at - elapsed, 1.0)
        # Next minute, where this minute's count becomes the fading previous one.
        fits_at = window * (1 - (limit - 1) / current)
        return max(window - elapsed + fits_at, 1.0)

    def wait(self) -> float | None:
        return self._wait
