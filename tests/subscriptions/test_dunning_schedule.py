"""Dunning's scheduled task: created by a data migration, editable in django-celery-beat."""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from subscriptions.tasks import dunning_run_daily

pytestmark = pytest.mark.django_db


def test_dunning_runs_every_day_at_six_utc() -> None:
    task = PeriodicTask.objects.get(task="subscriptions.tasks.dunning_run_daily")

    assert task.name == "dunning: retries, stages and final actions"
    assert task.enabled is True
    assert task.interval is None
    assert task.crontab is not None
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "0",
        "6",
        "*",
        "UTC",
    )


def test_the_task_runs_the_day_of_the_platform_clock_and_reports_nothing_to_do(
    clock: Any,
) -> None:
    assert dunning_run_daily() == {}
