"""Events and delivery attempts are a record of what happened: PostgreSQL refuses to edit them.

Deleting stays possible (pruning old events removes their deliveries and attempts with them).
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION webhooks_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (UPDATE refused)', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER webhooks_outboxevent_immutable
    BEFORE UPDATE ON webhooks_outboxevent
    FOR EACH ROW EXECUTE FUNCTION webhooks_refuse_update();
CREATE TRIGGER webhooks_attempt_immutable
    BEFORE UPDATE ON webhooks_webhookdeliveryattempt
    FOR EACH ROW EXECUTE FUNCTION webhooks_refuse_update();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS webhooks_attempt_immutable ON webhooks_webhookdeliveryattempt;
DROP TRIGGER IF EXISTS webhooks_outboxevent_immutable ON webhooks_outboxevent;
DROP FUNCTION IF EXISTS webhooks_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_periodic_task")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
