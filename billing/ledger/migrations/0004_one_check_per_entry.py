from django.db import migrations, models

# The same rules as 0002-0003 for a tenth of the work at commit. Before, every line queued a
# deferred check of three queries (account, entry, balance) and every entry one more: about ten
# trigger queries per three-line entry, most of a batch's commit. Now:
# - one deferred check per ENTRY (lines and balance in one query): an entry's lines can only be
#   added by the transaction that created it (created_txid), so at its commit they are all in;
# - one non-deferred check per STATEMENT of lines, set-wise: entry and account exist, the line is
#   in the account's currency, and the entry was created by this transaction (txid_current() is
#   the top-level transaction even inside savepoints);
# - SET CONSTRAINTS ... IMMEDIATE can run an entry's check before its last line; the check
#   notes the highest entry it has passed (a transaction-local setting) and any line added
#   later to such an entry queues a balance check of its own, so that entry is checked again.
# created_txid is set by its column default; the entry's check refuses any other value, so no
# entry can be opened to a later transaction (transaction ids never repeat in a cluster).
FORWARD = """
CREATE OR REPLACE FUNCTION ledger_check_entry() RETURNS trigger AS $$
DECLARE
    checked_entry bigint;
    totals RECORD;
BEGIN
    IF TG_TABLE_NAME = 'ledger_journalentry' THEN
        IF NEW.created_txid <> txid_current() THEN
            RAISE EXCEPTION 'ledger entry % claims transaction %; created_txid is set by PostgreSQL',
                NEW.id, NEW.created_txid USING ERRCODE = 'check_violation';
        END IF;
        checked_entry := NEW.id;
    ELSE
        checked_entry := NEW.entry_id;
    END IF;
    FOR totals IN
        SELECT currency,
               COALESCE(SUM(amount) FILTER (WHERE side = 'debit'), 0) AS debits,
               COALESCE(SUM(amount) FILTER (WHERE side = 'credit'), 0) AS credits
          FROM ledger_journalline
         WHERE entry_id = checked_entry
         GROUP BY currency
    LOOP
        IF totals.debits <> totals.credits THEN
            RAISE EXCEPTION 'ledger entry % does not balance in %: debits %, credits %',
                checked_entry, totals.currency, totals.debits, totals.credits
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger entry % has no lines', checked_entry
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('ledger.checked_through', GREATEST(checked_entry,
        NULLIF(current_setting('ledger.checked_through', true), '')::bigint)::text, true);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
-- The function's query plan is cached per session: planned while the table is still small,
-- it would scan the whole table on every entry ever after (quadratic). Always use the index.
SET enable_seqscan = off;

CREATE CONSTRAINT TRIGGER ledger_entry_checked
    AFTER INSERT ON ledger_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();

CREATE CONSTRAINT TRIGGER ledger_line_added_after_check
    AFTER INSERT ON ledger_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.entry_id <= NULLIF(current_setting('ledger.checked_through', true), '')::bigint)
    EXECUTE FUNCTION ledger_check_entry();

CREATE OR REPLACE FUNCTION ledger_check_new_lines() RETURNS trigger AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT n.id, n.entry_id, n.account_id, n.currency,
           a.id IS NULL AS no_account, e.id IS NULL AS no_entry
      INTO bad
      FROM new_lines n
      LEFT JOIN ledger_account a ON a.id = n.account_id AND a.currency = n.currency
      LEFT JOIN ledger_journalentry e ON e.id = n.entry_id
     WHERE a.id IS NULL OR e.id IS NULL OR e.created_txid <> txid_current()
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF bad.no_account THEN
        RAISE EXCEPTION 'ledger line % refers to no % account %',
            bad.id, bad.currency, bad.account_id USING ERRCODE = 'foreign_key_violation';
    ELSIF bad.no_entry THEN
        RAISE EXCEPTION 'ledger line % refers to no entry %', bad.id, bad.entry_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- A posted entry is final like its lines: adding one would change it.
    RAISE EXCEPTION 'ledger line % is added to entry %, which another transaction posted',
        bad.id, bad.entry_id USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql
SET enable_seqscan = off;

CREATE TRIGGER ledger_lines_checked
    AFTER INSERT ON ledger_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_lines();

DROP TRIGGER ledger_line_entry_balanced ON ledger_journalline;
DROP FUNCTION ledger_check_entry_balanced();
DROP TRIGGER ledger_entry_has_lines ON ledger_journalentry;
DROP FUNCTION ledger_check_entry_has_lines();
"""

# 0002's has-lines check and 0003's per-line check, as they were.
BACKWARD = """
DROP TRIGGER ledger_lines_checked ON ledger_journalline;
DROP FUNCTION ledger_check_new_lines();
DROP TRIGGER ledger_line_added_after_check ON ledger_journalline;
DROP TRIGGER ledger_entry_checked ON ledger_journalentry;
DROP FUNCTION ledger_check_entry();

CREATE OR REPLACE FUNCTION ledger_check_entry_has_lines() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_journalline WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'ledger entry % has no lines', NEW.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
SET enable_seqscan = off;

CREATE CONSTRAINT TRIGGER ledger_entry_has_lines
    AFTER INSERT ON ledger_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_has_lines();

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

CREATE CONSTRAINT TRIGGER ledger_line_entry_balanced
    AFTER INSERT ON ledger_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_line_checks_without_row_locks")]

    operations = [
        migrations.AddField(
            model_name="journalentry",
            name="created_txid",
            field=models.BigIntegerField(
                db_default=models.Func(function="txid_current"),
                editable=False,
                help_text="The transaction that created the entry, the only one that may add "
                "its lines (set by PostgreSQL).",
            ),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
