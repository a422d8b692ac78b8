"""Schedule the webhook sweeper in django-celery-beat: every minute, editable in the admin.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone.
"""

from django.db import migrations
from django.utils import timezone

TASK = "core.webhooks.tasks.webhook_retry_due"
NAME = "webhooks: send due deliveries and retries"


def create_periodic_task(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute = IntervalSchedule.objects.filter(every=1, period="minutes").order_by("id").first()
    if every_minute is None:
        every_minute = IntervalSchedule.objects.create(every=1, period="minutes")
    _, created = PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": every_minute,
            "description": "Queues the webhook deliveries whose attempt is due (retries, and "
            "first attempts whose task was lost).",
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
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_task, delete_periodic_task)]
