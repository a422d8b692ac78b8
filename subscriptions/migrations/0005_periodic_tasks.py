"""Schedule the time-driven work in django-celery-beat, editable in the admin:

- every hour, the billing run over everything due (subscriptions.tasks.billing_run_scheduled);
- every day at 00:15 UTC, revenue recognition up to yesterday (billing.ledger.tasks);
- every day at 03:30 UTC, the purge of expired Idempotency-Key records (api.tasks).

Created once (core.beat): a later migrate leaves an operator's changes (schedule, disabled)
alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="billing run: renewals and everything else due",
        task="subscriptions.tasks.billing_run_scheduled",
        description="Starts a billing run over every subscription due today (renewals, phase "
        "changes, scheduled changes, cancels, pause ends, usage periods), chunked over the "
        "workers.",
        every=(1, "hours"),
    ),
    PeriodicTaskSpec(
        name="ledger: daily revenue recognition",
        task="billing.ledger.tasks.recognition_run_daily",
        description="Recognizes deferred revenue for every day up to yesterday (once per day "
        "and currency).",
        crontab=("15", "0"),
    ),
    PeriodicTaskSpec(
        name="api: purge expired idempotency keys",
        task="api.tasks.idempotency_records_purge_expired",
        description="Deletes Idempotency-Key records older than API_IDEMPOTENCY_TTL_HOURS.",
        crontab=("30", "3"),
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0004_billing_run"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
