"""Schedule the pruning of old outbox events in django-celery-beat: daily, editable in the admin.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="webhooks: prune old events",
        task="core.webhooks.tasks.webhook_events_prune_old",
        description="Deletes outbox events older than WEBHOOK_EVENT_RETENTION_DAYS whose "
        "deliveries are settled, with their deliveries and attempts.",
        every=(1, "days"),
    )
]


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0003_append_only"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
