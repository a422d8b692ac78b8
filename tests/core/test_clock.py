"""The platform clock: stored and shared in TEST_MODE, the system clock in production."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from core import clock as platform_clock
from core.actors import SYSTEM
from core.errors import ConflictError, NotFoundError, ValidationError
from core.models import AuditLog
from core.models import TestClock as StoredClock
from core.services import test_clock_advance as advance_clock
from core.services import test_clock_set as set_clock
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db

BASE_DIR = Path(django_settings.BASE_DIR)
Register = Callable[[str, platform_clock.DailyWork], None]


def _database_url() -> str:
    """The URL of the database this test runs on (the test database, not the configured one)."""
    db = connection.settings_dict
    credentials = quote(db["USER"], safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{quote(db['HOST'], safe='')}{port}/{db['NAME']}"


def _in_another_thread(read: Callable[[], Any]) -> Any:
    """Run `read` on a second database connection (Django gives each thread its own)."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(read())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return results[0]


def _recording(calls: list[date], result: dict[str, int]) -> platform_clock.DailyWork:
    """Daily work that notes the days it ran for and reports `result`."""

    def work(day: date) -> dict[str, int]:
        calls.append(day)
        return result

    return work


def test_test_mode_reads_the_stored_clock(clock: Callable[[datetime], datetime]) -> None:
    assert clock_now_and_today() == (FIXED_NOW, date(2026, 1, 15))

    clock(datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC))

    assert clock_now_and_today() == (
        datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
        date(2026, 2, 28),
    )


def clock_now_and_today() -> tuple[datetime, date]:
    return platform_clock.now(), platform_clock.today()


def test_today_is_the_utc_date_whatever_the_offset_the_time_was_set_with(
    clock: Callable[[datetime], datetime],
) -> None:
    clock(datetime.fromisoformat("2026-03-01T01:30:00+05:00"))

    assert platform_clock.today() == date(2026, 2, 28)
    assert platform_clock.now() == datetime(2026, 2, 28, 20, 30, tzinfo=UTC)


def test_the_first_read_starts_the_test_clock_at_the_real_time() -> None:
    assert not StoredClock.objects.exists()
    before = timezone.now().replace(microsecond=0)

    now = platform_clock.now()

    assert before <= now <= timezone.now()
    assert now.microsecond == 0
    assert StoredClock.objects.get().frozen_time == now
    assert platform_clock.now() == now  # it does not tick


@pytest.mark.django_db(transaction=True)
def test_the_stored_clock_is_shared_with_other_connections(
    clock: Callable[[datetime], datetime],
) -> None:
    clock(datetime(2027, 6, 30, 8, 15, tzinfo=UTC))

    assert _in_another_thread(platform_clock.now) == datetime(2027, 6, 30, 8, 15, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_the_stored_clock_is_shared_with_other_processes(
    clock: Callable[[datetime], datetime],
) -> None:
    clock(datetime(2027, 6, 30, 8, 15, tzinfo=UTC))
    env = {**os.environ, "DATABASE_URL": _database_url(), "TEST_MODE": "true"}

    completed = subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            "from core import clock; print(clock.now().isoformat(), clock.today().isoformat())",
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["2027-06-30T08:15:00+00:00", "2027-06-30"]


def test_production_reads_the_system_clock(
    clock: Callable[[datetime], datetime], settings: Any
) -> None:
    settings.TEST_MODE = False
    before = timezone.now()

    now = platform_clock.now()

    assert before <= now <= timezone.now()
    assert now.tzinfo is not None
    assert StoredClock.objects.get().frozen_time == FIXED_NOW  # the stored clock is not consulted


def test_production_never_creates_a_test_clock(settings: Any) -> None:
    settings.TEST_MODE = False

    platform_clock.now()
    platform_clock.today()

    assert not StoredClock.objects.exists()


def test_advance_runs_each_crossed_day_once_in_order(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    calls: list[tuple[str, date, datetime]] = []

    def billing(day: date) -> dict[str, int]:
        calls.append(("billing", day, clock_now_and_today()[0]))
        return {"invoices": 1 if day == date(2026, 1, 17) else 0}

    def notices(day: date) -> dict[str, int]:
        calls.append(("notices", day, clock_now_and_today()[0]))
        return {"sent": 0}

    daily_work("billing", billing)
    daily_work("notices", notices)

    result = advance_clock(to=datetime(2026, 1, 18, 6, 0, tzinfo=UTC), actor=SYSTEM)

    midnight = lambda d: datetime(2026, 1, d, tzinfo=UTC)  # noqa: E731
    assert calls == [
        ("billing", date(2026, 1, 16), midnight(16)),
        ("notices", date(2026, 1, 16), midnight(16)),
        ("billing", date(2026, 1, 17), midnight(17)),
        ("notices", date(2026, 1, 17), midnight(17)),
        ("billing", date(2026, 1, 18), midnight(18)),
        ("notices", date(2026, 1, 18), midnight(18)),
    ]
    assert result == {
        "from": FIXED_NOW,
        "to": datetime(2026, 1, 18, 6, 0, tzinfo=UTC),
        "days": [{"date": "2026-01-17", "work": {"billing": {"invoices": 1}}}],
    }
    assert platform_clock.now() == datetime(2026, 1, 18, 6, 0, tzinfo=UTC)


def test_advance_within_the_day_runs_no_daily_work(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    calls: list[date] = []
    daily_work("billing", _recording(calls, {"invoices": 0}))

    result = advance_clock(to=datetime(2026, 1, 15, 23, 59, tzinfo=UTC), actor=SYSTEM)

    assert calls == []
    assert result["days"] == []
    assert platform_clock.now() == datetime(2026, 1, 15, 23, 59, tzinfo=UTC)


def test_advance_records_who_moved_the_clock(clock: Callable[[datetime], datetime]) -> None:
    advance_clock(to=datetime(2026, 2, 1, tzinfo=UTC), actor=SYSTEM)

    entry = AuditLog.objects.get(action="test_clock.advance")
    assert (entry.actor_type, entry.actor_label) == ("system", "system")
    assert (entry.object_type, entry.object_id) == ("core.testclock", "1")
    assert entry.before == {"frozen_time": "2026-01-15T12:00:00+00:00"}
    assert entry.after == {"frozen_time": "2026-02-01T00:00:00+00:00"}
    assert entry.occurred_at == datetime(2026, 2, 1, tzinfo=UTC)


def test_advance_refuses_to_go_backwards_and_changes_nothing(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    calls: list[date] = []
    daily_work("billing", _recording(calls, {"invoices": 1}))

    with pytest.raises(ValidationError) as caught:
        advance_clock(to=FIXED_NOW - timedelta(seconds=1), actor=SYSTEM)

    assert (caught.value.code, caught.value.param) == ("clock_backwards", "to")
    assert platform_clock.now() == FIXED_NOW
    assert calls == []
    assert not AuditLog.objects.exists()


def test_advance_refuses_a_naive_time(clock: Callable[[datetime], datetime]) -> None:
    with pytest.raises(ValidationError) as caught:
        advance_clock(to=datetime(2026, 2, 1), actor=SYSTEM)  # noqa: DTZ001

    assert caught.value.param == "to"
    assert platform_clock.now() == FIXED_NOW


def test_a_failing_day_leaves_the_clock_after_the_last_completed_day(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    calls: list[date] = []
    failing = {date(2026, 1, 17)}

    def billing(day: date) -> dict[str, int]:
        calls.append(day)
        if day in failing:
            raise RuntimeError("billing run failed")
        return {"invoices": 1}

    daily_work("billing", billing)

    with pytest.raises(RuntimeError, match="billing run failed"):
        advance_clock(to=datetime(2026, 1, 18, 9, 0, tzinfo=UTC), actor=SYSTEM)

    assert calls == [date(2026, 1, 16), date(2026, 1, 17)]
    assert platform_clock.now() == datetime(2026, 1, 16, tzinfo=UTC)
    entry = AuditLog.objects.get(action="test_clock.advance")
    assert entry.before == {"frozen_time": "2026-01-15T12:00:00+00:00"}
    assert entry.after == {"frozen_time": "2026-01-16T00:00:00+00:00"}

    # The retry runs the failed day again, and only the days not completed.
    failing.clear()
    result = advance_clock(to=datetime(2026, 1, 18, 9, 0, tzinfo=UTC), actor=SYSTEM)

    assert calls == [date(2026, 1, 16), date(2026, 1, 17), date(2026, 1, 17), date(2026, 1, 18)]
    assert [d["date"] for d in result["days"]] == ["2026-01-17", "2026-01-18"]
    assert platform_clock.now() == datetime(2026, 1, 18, 9, 0, tzinfo=UTC)


def test_a_failing_first_day_leaves_the_clock_where_it_was_and_records_nothing(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    def billing(day: date) -> dict[str, int]:
        raise RuntimeError("billing run failed")

    daily_work("billing", billing)

    with pytest.raises(RuntimeError):
        advance_clock(to=datetime(2026, 1, 18, tzinfo=UTC), actor=SYSTEM)

    assert platform_clock.now() == FIXED_NOW
    assert not AuditLog.objects.exists()


def test_the_test_clock_cannot_be_moved_in_production(
    clock: Callable[[datetime], datetime], settings: Any
) -> None:
    settings.TEST_MODE = False

    with pytest.raises(NotFoundError) as advance_refused:
        advance_clock(to=datetime(2026, 2, 1, tzinfo=UTC), actor=SYSTEM)
    with pytest.raises(NotFoundError) as set_refused:
        set_clock(to=datetime(2026, 2, 1, tzinfo=UTC))

    assert advance_refused.value.code == set_refused.value.code == "test_mode_off"
    assert StoredClock.objects.get().frozen_time == FIXED_NOW


@pytest.mark.django_db(transaction=True)
def test_a_second_advance_while_one_runs_is_refused(
    clock: Callable[[datetime], datetime], daily_work: Register
) -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[date] = []

    def slow_billing(day: date) -> dict[str, int]:
        calls.append(day)
        started.set()
        release.wait(timeout=30)
        return {"invoices": 1}

    daily_work("billing", slow_billing)
    first: list[dict[str, Any]] = []

    def advance_one_day() -> None:
        try:
            first.append(advance_clock(to=datetime(2026, 1, 16, tzinfo=UTC), actor=SYSTEM))
        finally:
            connection.close()

    thread = threading.Thread(target=advance_one_day)
    thread.start()
    try:
        assert started.wait(timeout=30)

        with pytest.raises(ConflictError) as caught:
            advance_clock(to=datetime(2026, 1, 20, tzinfo=UTC), actor=SYSTEM)
    finally:
        release.set()
        thread.join(timeout=30)

    assert caught.value.code == "test_clock_busy"
    assert calls == [date(2026, 1, 16)]
    assert first[0]["to"] == datetime(2026, 1, 16, tzinfo=UTC)
    assert platform_clock.now() == datetime(2026, 1, 16, tzinfo=UTC)
    # The lock is released: the next advance goes through.
    advance_clock(to=datetime(2026, 1, 17, tzinfo=UTC), actor=SYSTEM)
    assert calls == [date(2026, 1, 16), date(2026, 1, 17)]


def test_unregistered_work_no_longer_runs(clock: Callable[[datetime], datetime]) -> None:
    calls: list[date] = []
    platform_clock.register_daily_work("temporary", _recording(calls, {"n": 1}))
    platform_clock.unregister_daily_work("temporary")
    platform_clock.unregister_daily_work("never-registered")  # no error

    advance_clock(to=datetime(2026, 1, 17, tzinfo=UTC), actor=SYSTEM)

    assert calls == []
    assert "temporary" not in platform_clock.daily_work()
