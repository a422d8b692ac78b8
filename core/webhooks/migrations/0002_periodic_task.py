"""Schedule the webhook sweeper in django-celery-beat: every minute, editable in the admin.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="webhooks: send due deliveries and retries",
        task="core.webhooks.tasks.webhook_retry_due",
        description="Queues the webhook deliveries whose attempt is due (retries, and "
        "first attempts whose task was lost).",
        every=(1, "minutes"),
    )
]


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
