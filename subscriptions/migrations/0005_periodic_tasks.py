"""Schedule the time-driven work in django-celery-beat, editable in the admin:

- every hour, the billing run over everything due (subscriptions.tasks.billing_run_scheduled);
- every day at 00:15 UTC, revenue recognition up to yesterday (billing.ledger.tasks);
- every day at 03:30 UTC, the purge of expired Idempotency-Key records (api.tasks).

Created once: a later migrate leaves an operator's changes (schedule, disabled) alone. Tasks are
named, not imported, so this migration depends on no other app's code.
"""

from django.db import migrations
from django.utils import timezone

HOURLY = ("interval", (1, "hours"))
TASKS = [
    (
        "billing run: renewals and everything else due",
        "subscriptions.tasks.billing_run_scheduled",
        HOURLY,
        "Starts a billing run over every subscription due today (renewals, phase changes, "
        "scheduled changes, cancels, pause ends, usage periods), chunked over the workers.",
    ),
    (
        "ledger: daily revenue recognition",
        "billing.ledger.tasks.recognition_run_daily",
        ("crontab", ("15", "0")),
        "Recognizes deferred revenue for every day up to yesterday (once per day and currency).",
    ),
    (
        "api: purge expired idempotency keys",
        "api.tasks.idempotency_records_purge_expired",
        ("crontab", ("30", "3")),
        "Deletes Idempotency-Key records older than API_IDEMPOTENCY_TTL_HOURS.",
    ),
]


def create_periodic_tasks(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    created_any = False
    for name, task, (kind, spec), description in TASKS:
        schedule = {}
        if kind == "interval":
            every, period = spec
            interval = (
                IntervalSchedule.objects.filter(every=every, period=period).order_by("id").first()
            )
            schedule["interval"] = interval or IntervalSchedule.objects.create(
                every=every, period=period
            )
        else:
            minute, hour = spec
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
        _, created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "description": description, **schedule}
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
        ("subscriptions", "0004_billing_run"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_tasks, delete_periodic_tasks)]
