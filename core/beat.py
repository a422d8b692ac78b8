"""Periodic tasks created by data migrations: the one way every app schedules its work.

A migration lists its tasks as `PeriodicTaskSpec`s and runs `periodic_tasks_create` forward and
`periodic_tasks_delete` backward. Tasks are named, not imported, so no app's code is needed, and
only django-celery-beat's historical models (`apps`) are used. A task is created once: a later
`migrate` leaves an operator's edits (schedule, disabled) alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone


@dataclass(frozen=True)
class PeriodicTaskSpec:
    """A task on a schedule: `every` (10, "minutes") or a daily `crontab` (minute, hour) UTC."""

    name: str
    task: str
    description: str
    every: tuple[int, str] | None = None
    crontab: tuple[str, str] | None = None


def periodic_tasks_create(apps: Any, specs: Sequence[PeriodicTaskSpec]) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    created_any = False
    for spec in specs:
        schedule: dict[str, Any] = {}
        if spec.every is not None:
            every, period = spec.every
            interval = (
                IntervalSchedule.objects.filter(every=every, period=period).order_by("id").first()
            )
            schedule["interval"] = interval or IntervalSchedule.objects.create(
                every=every, period=period
            )
        elif spec.crontab is not None:
            minute, hour = spec.crontab
            fields = {
                "minute": minute,
                "hour": hour,
                "day_of_week": "*",
                "day_of_month": "*",
                "month_of_year": "*",
                "timezone": "UTC",
            }
            crontab = CrontabSchedule.objects.filter(**fields).order_by("id").first()
            schedule["crontab"] = crontab or CrontabSchedule.objects.create(**fields)
        else:
            raise ValueError(f"{spec.name}: give `every` or `crontab`")
        _, created = PeriodicTask.objects.get_or_create(
            name=spec.name,
            defaults={"task": spec.task, "description": spec.description, **schedule},
        )
        created_any = created_any or created
    if created_any:
        _tell_running_beat(apps)


def periodic_tasks_delete(apps: Any, specs: Sequence[PeriodicTaskSpec]) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for spec in specs:
        PeriodicTask.objects.filter(name=spec.name, task=spec.task).delete()
    _tell_running_beat(apps)


def _tell_running_beat(apps: Any) -> None:
    # Historical models skip django-celery-beat's save signals: bump its change marker by hand
    # so a running beat reloads the schedule (wall clock: the marker is compared to real time).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
