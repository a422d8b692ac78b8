"""Schedule the payment sweeper in django-celery-beat: every 10 minutes, editable in the admin.

Created once: a later migrate leaves an operator's changes (interval, disabled) alone. The task is
named, not imported, so this migration depends on no app's code.
"""

from django.db import migrations
from django.utils import timezone

TASK = "billing.tasks.payment_attempts_sweep"
NAME = "payments: settle charges a dead worker left behind"


def create_periodic_task(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_ten_minutes = (
        IntervalSchedule.objects.filter(every=10, period="minutes").order_by("id").first()
    )
    if every_ten_minutes is None:
        every_ten_minutes = IntervalSchedule.objects.create(every=10, period="minutes")
    _, created = PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": every_ten_minutes,
            "description": "Settles the payment attempts still pending after "
            "PAYMENT_ATTEMPT_STALE_MINUTES (asks the gateway; sends the same key again only if it "
            "never saw it) and charges the open autocharge invoices never attempted.",
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
        ("billing", "0006_paymentattempt_claimed_at"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_periodic_task, delete_periodic_task)]
