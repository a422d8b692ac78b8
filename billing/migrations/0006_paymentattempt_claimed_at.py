"""A payment attempt remembers when a worker last claimed it, by the wall clock.

An attempt still pending long after its claim was left by a worker that died between the claim
and the record; the sweeper (`payment_attempts_sweep`) settles it. Real elapsed time tells, so
the platform clock (`created_at`, a test clock in TEST_MODE) cannot. Attempts claimed before
this migration count from the migration.

The guard of 0005 lets only the outcome columns of an attempt change: `claimed_at` joins them
(it moves when an unknown outcome is retried).
"""

import django.utils.timezone
from django.db import migrations, models

OUTCOME_COLUMNS = [
    "status",
    "decline_code",
    "decline_kind",
    "gateway_reference",
    "error_message",
    "resolved_at",
]


def _guard(columns):
    arguments = ", ".join(f"'{column}'" for column in columns)
    return (
        "DROP TRIGGER billing_paymentattempt_guard ON billing_paymentattempt;\n"
        "CREATE TRIGGER billing_paymentattempt_guard BEFORE UPDATE OR DELETE ON "
        "billing_paymentattempt FOR EACH ROW "
        f"EXECUTE FUNCTION billing_only_columns_change({arguments});"
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_payments_guarded")]

    operations = [
        migrations.AddField(
            model_name="paymentattempt",
            name="claimed_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="Wall clock: when a worker last took it to the gateway. Still pending "
                "long after (PAYMENT_ATTEMPT_STALE_MINUTES), its worker died: the sweeper "
                "settles it.",
            ),
        ),
        migrations.RunSQL(
            _guard([*OUTCOME_COLUMNS, "claimed_at"]), reverse_sql=_guard(OUTCOME_COLUMNS)
        ),
    ]
