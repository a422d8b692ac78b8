"""Schedule dunning's daily work in django-celery-beat (editable in the admin): every day at
06:00 UTC, the retries, stages and final actions due that day (subscriptions.tasks).

Created once (core.beat): a later migrate leaves an operator's changes (time, disabled) alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="dunning: retries, stages and final actions",
        task="subscriptions.tasks.dunning_run_daily",
        description=(
            "Retries the unpaid subscription invoices due a retry today, moves overdue "
            "subscriptions to warning or blocked, and takes the final action (DUNNING_* "
            "settings; docs/dunning.md)."
        ),
        crontab=("0", "6"),
    )
]


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0006_dunning_case"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
