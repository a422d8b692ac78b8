"""Schedule the notification work in django-celery-beat, editable in the admin:

- every 5 minutes, the emails due for another attempt (core.notifications.tasks);
- every hour, the renewal, trial-ending and price-change notices of the day
  (subscriptions.notices: registered by name only, core imports nothing from subscriptions).
  Running it every hour costs little (a notice already sent is skipped by its key) and a missed
  hour or day is caught up by the next run.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone.
"""

from django.db import migrations
from django.utils import timezone

TASKS = [
    (
        "notifications: retry emails not sent yet",
        "core.notifications.tasks.notification_send_due",
        (5, "minutes"),
        "Sends again the emails the mail server refused (on their retry schedule) and those "
        "whose sender died mid-send.",
    ),
    (
        "notices: renewal, trial-ending and price-change notices",
        "subscriptions.notices.notices_send_today",
        (1, "hours"),
        "Sends the notices due today (each at most once; a late run catches up).",
    ),
]


def create_periodic_tasks(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    created_any = False
    for name, task, (every, period), description in TASKS:
        interval = (
            IntervalSchedule.objects.filter(every=every, period=period).order_by("id").first()
        )
        if interval is None:
            interval = IntervalSchedule.objects.create(every=every, period=period)
        _, created = PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "interval": interval, "description": description},
        )
        created_any = created_any or created
    if created_any:
        _tell_running_beat(apps)


def _tell_running_beat(apps):
    # Historical models skip django-celery-beat's save signals: bump its change marker by hand
    # so a running beat reloads the schedule (wall clock: the marker is compared to real time).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def delete_periodic_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, _, _ in TASKS:
        PeriodicTask.objects.filter(name=name, task=task).delete()
    _tell_running_beat(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_content_immutable"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, delete_periodic_tasks)]
