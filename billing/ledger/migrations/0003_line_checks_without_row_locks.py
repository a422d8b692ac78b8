import django.db.models.deletion
from django.db import migrations, models

# The lines' foreign keys become part of the deferred check at commit. A foreign key check takes
# a key-share row lock on the referenced row; on the account rows that the same posting updates
# that lock cost more than all the rest of the posting (a multixact per line). Entries and
# accounts can never be deleted nor re-keyed (0002's triggers), so a plain lookup at commit
# guarantees the same thing.
CHECK_LINE = """
CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger AS $$
DECLARE
    unbalanced RECORD;
BEGIN
    PERFORM 1 FROM ledger_account WHERE id = NEW.account_id AND currency = NEW.currency;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger line % refers to no % account %',
            NEW.id, NEW.currency, NEW.account_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    PERFORM 1 FROM ledger_journalentry WHERE id = NEW.entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger line % refers to no entry %', NEW.id, NEW.entry_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT currency,
           COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0) AS debits,
           COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0) AS credits
      INTO unbalanced
      FROM ledger_journalline
     WHERE entry_id = NEW.entry_id
     GROUP BY currency
    HAVING COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0)
           <> COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry % does not balance in %: debits %, credits %',
            NEW.entry_id, unbalanced.currency, unbalanced.debits, unbalanced.credits
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
SET enable_seqscan = off;

ALTER TABLE ledger_journalline DROP CONSTRAINT ledger_line_account_currency_fk;
"""

PREVIOUS_CHECK = """
ALTER TABLE ledger_journalline
    ADD CONSTRAINT ledger_line_account_currency_fk
    FOREIGN KEY (account_id, currency) REFERENCES ledger_account (id, currency);

CREATE OR REPLACE FUNCTION ledger_check_entry_balanced() RETURNS trigger AS $$
DECLARE
    unbalanced RECORD;
BEGIN
    SELECT currency,
           COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0) AS debits,
           COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0) AS credits
      INTO unbalanced
      FROM ledger_journalline
     WHERE entry_id = NEW.entry_id
     GROUP BY currency
    HAVING COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0)
           <> COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry % does not balance in %: debits %, credits %',
            NEW.entry_id, unbalanced.currency, unbalanced.debits, unbalanced.credits
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
SET enable_seqscan = off;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_ledger_integrity")]

    operations = [
        migrations.RunSQL(CHECK_LINE, PREVIOUS_CHECK),
        migrations.RemoveConstraint(model_name="account", name="ledger_account_id_currency"),
        migrations.AlterField(
            model_name="journalline",
            name="entry",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lines",
                to="ledger.journalentry",
            ),
        ),
    ]
