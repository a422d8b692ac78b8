"""The platform clock: the only way the platform reads "now".

Production reads the system clock. In TEST_MODE the time is the stored `TestClock` row, so the
web process and every worker agree on it and tests move it instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from django.conf import settings
from django.utils import timezone

from core.errors import NotFoundError

DailyWork = Callable[[date], dict[str, int]]
_daily_work: dict[str, DailyWork] = {}


def now() -> datetime:
    if settings.TEST_MODE:
        from core.selectors import test_clock_now

        return test_clock_now()
    return timezone.now()


def today() -> date:
    """Today's date in UTC, the calendar every billing period is measured in."""
    return now().astimezone(UTC).date()


def register_daily_work(name: str, work: DailyWork) -> None:
    """Register work that falls due each day (billing, phases, recognition...).

    Apps register in `AppConfig.ready()`; the test clock advance and the scheduled tasks run
    them, so core knows nothing about the apps above it.
    """
    _daily_work[name] = work


def unregister_daily_work(name: str) -> None:
    """Remove registered work (tests register their own and take it away afterwards)."""
    _daily_work.pop(name, None)


def daily_work() -> dict[str, DailyWork]:
    """The registered work, in registration order (the order it runs in each day)."""
    return dict(_daily_work)


def require_test_mode() -> None:
    """Refuse, as if it did not exist, anything that moves or shows the test clock in production."""
    if not settings.TEST_MODE:
        raise NotFoundError("The test clock exists only in TEST_MODE.", code="test_mode_off")
