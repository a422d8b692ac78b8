"""Schedule the notification work in django-celery-beat, editable in the admin:

- every 5 minutes, the emails due for another attempt (core.notifications.tasks);
- every hour, the renewal, trial-ending and price-change notices of the day
  (subscriptions.notices: registered by name only, core imports nothing from subscriptions).
  Running it every hour costs little (a notice already sent is skipped by its key) and a missed
  hour or day is caught up by the next run.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="notifications: retry emails not sent yet",
        task="core.notifications.tasks.notification_send_due",
        description="Sends again the emails the mail server refused (on their retry schedule) "
        "and those whose sender died mid-send.",
        every=(5, "minutes"),
    ),
    PeriodicTaskSpec(
        name="notices: renewal, trial-ending and price-change notices",
        task="subscriptions.notices.notices_send_today",
        description="Sends the notices due today (each at most once; a late run catches up).",
        every=(1, "hours"),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_content_immutable"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
