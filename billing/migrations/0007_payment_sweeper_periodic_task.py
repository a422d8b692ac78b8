"""Schedule the payment sweeper in django-celery-beat: every 10 minutes, editable in the admin.

Created once (core.beat): a later migrate leaves an operator's changes (interval, disabled)
alone.
"""

from django.db import migrations

from core.beat import PeriodicTaskSpec, periodic_tasks_create, periodic_tasks_delete

TASKS = [
    PeriodicTaskSpec(
        name="payments: settle charges a dead worker left behind",
        task="billing.tasks.payment_attempts_sweep",
        description="Settles the payment attempts still pending after "
        "PAYMENT_ATTEMPT_STALE_MINUTES (asks the gateway; sends the same key again only if it "
        "never saw it) and charges the open autocharge invoices never attempted.",
        every=(10, "minutes"),
    )
]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_paymentattempt_claimed_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, _: periodic_tasks_create(apps, TASKS),
            lambda apps, _: periodic_tasks_delete(apps, TASKS),
        )
    ]
