"""What a notification said, to whom and about what is a record: PostgreSQL refuses to edit it.

Only the delivery columns (status, attempts, error, next attempt, lease, sent_at, updated_at)
change after the insert. Deleting stays possible (pruning an old log).
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION notifications_refuse_content_update() RETURNS trigger AS $$
BEGIN
    IF (NEW.kind, NEW.dedupe_key, NEW.recipient, NEW.subject, NEW.body_text, NEW.body_html,
        NEW.template, NEW.related_type, NEW.related_id, NEW.customer_id, NEW.created_at)
       IS DISTINCT FROM
       (OLD.kind, OLD.dedupe_key, OLD.recipient, OLD.subject, OLD.body_text, OLD.body_html,
        OLD.template, OLD.related_type, OLD.related_id, OLD.customer_id, OLD.created_at)
    THEN
        RAISE EXCEPTION 'a notification''s content is never edited (UPDATE refused)'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER notifications_notification_content_immutable
    BEFORE UPDATE ON notifications_notification
    FOR EACH ROW EXECUTE FUNCTION notifications_refuse_content_update();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS notifications_notification_content_immutable ON notifications_notification;
DROP FUNCTION IF EXISTS notifications_refuse_content_update();
"""


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
