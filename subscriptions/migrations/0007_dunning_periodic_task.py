"""Schedule dunning's daily work in django-celery-beat (editable in the admin): every day at
06:00 UTC, the retries, stages and final actions due that day (subscriptions.tasks).

Created once: a later migrate leaves an operator's changes (time, disabled) alone. The task is
named, not imported, so this migration depends on no app's code.
"""

from django.db import migrations
from django.utils import timezone

NAME = "dunning: retries, stages and final actions"
TASK = "subscriptions.tasks.dunning_run_daily"
DESCRIPTION = (
    "Retries the unpaid subscription invoices due a retry today, moves overdue subscriptions to "
    "warning or blocked, and takes the final action (DUNNING_* settings; docs/dunning.md)."
)
CRONTAB = {
    "minute": "0",
    "hour": "6",
    "day_of_week": "*",
    "day_of_month": "*",
    "month_of_year": "*",
    "timezone": "UTC",
}


def create_periodic_task(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab = CrontabSchedule.objects.filter(**CRONTAB).order_by("id").first()
    _, created = PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "description": DESCRIPTION,
            "crontab": crontab or CrontabSchedule.objects.create(**CRONTAB),
        },
    )
    if created:
        _tell_running_beat(apps)


def _tell_running_beat(apps):
    # Historical models skip django-celery-beat's save signals: bump its change marker by hand
    # so a running beat reloads the schedule (wall clock: the marker is compared to real time).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_periodic_task(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME, task=TASK).delete()
    _tell_running_beat(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0006_dunning_case"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_task, delete_periodic_task)]
