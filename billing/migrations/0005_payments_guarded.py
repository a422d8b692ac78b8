"""PostgreSQL refuses what must never happen to money that moved.

Payments, payment attempts, refunds, disputes, saved payment methods and Stripe events are
never deleted, and only the columns that record what happened next may change (a payment's
status and amount refunded, an attempt's outcome...). Refund lines are append-only. Errors are
raised with SQLSTATE 23000 (integrity_constraint_violation), an IntegrityError in Django.
"""

from django.db import migrations

GUARDED = {
    "billing_payment": ["status", "amount_refunded"],
    "billing_paymentattempt": [
        "status",
        "decline_code",
        "decline_kind",
        "gateway_reference",
        "error_message",
        "resolved_at",
    ],
    "billing_refund": ["status", "gateway_reference", "error_message", "resolved_at", "origin"],
    "billing_dispute": ["status", "closed_at"],
    "billing_paymentmethod": ["is_default", "status", "detached_at"],
    "billing_stripeevent": ["status", "error", "processed_at"],
}

FUNCTION = r"""
CREATE FUNCTION billing_only_columns_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = '23000';
    END IF;
    IF (to_jsonb(NEW) - TG_ARGV) <> (to_jsonb(OLD) - TG_ARGV) THEN
        RAISE EXCEPTION 'only % change in %', array_to_string(TG_ARGV, ', '), TG_TABLE_NAME
            USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END;
$$;
"""


def _forward() -> str:
    sql = [FUNCTION]
    for table, columns in GUARDED.items():
        arguments = ", ".join(f"'{column}'" for column in columns)
        sql.append(
            f"CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION billing_only_columns_change({arguments});"
        )
    sql.append(
        "CREATE TRIGGER billing_refundline_append_only BEFORE UPDATE OR DELETE ON "
        "billing_refundline FOR EACH ROW EXECUTE FUNCTION billing_append_only();"
    )
    return "\n".join(sql)


def _backward() -> str:
    sql = ["DROP TRIGGER billing_refundline_append_only ON billing_refundline;"]
    sql += [f"DROP TRIGGER {table}_guard ON {table};" for table in GUARDED]
    sql.append("DROP FUNCTION billing_only_columns_change();")
    return "\n".join(sql)


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_payments")]

    operations = [migrations.RunSQL(_forward(), _backward())]
