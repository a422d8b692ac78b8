from django.db import migrations

# The timeline is history: PostgreSQL itself refuses to rewrite or erase it, even from raw SQL.
# (TRUNCATE stays possible: the test suite's database flush uses it.)
FORWARD = """
CREATE OR REPLACE FUNCTION subscriptions_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'subscription events are append-only (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER subscriptions_event_no_update_delete
    BEFORE UPDATE OR DELETE ON subscriptions_subscriptionevent
    FOR EACH ROW EXECUTE FUNCTION subscriptions_event_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS subscriptions_event_no_update_delete ON subscriptions_subscriptionevent;
DROP FUNCTION IF EXISTS subscriptions_event_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
