from django.db import migrations

# The ledger's rules, enforced by PostgreSQL itself so that no code path (raw SQL included) can
# break them. TRUNCATE stays possible: the test suite's database flush uses it.
FORWARD = """
-- A line's currency is its account's.
ALTER TABLE ledger_journalline
    ADD CONSTRAINT ledger_line_account_currency_fk
    FOREIGN KEY (account_id, currency) REFERENCES ledger_account (id, currency);

-- Every entry balances per currency, checked at commit (after all its lines are in), after
-- django-hordak's check_leg trigger.
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
-- The function's query plan is cached per session: planned while the table is still small,
-- it would scan the whole table on every line ever after (quadratic). Always use the index.
SET enable_seqscan = off;

CREATE CONSTRAINT TRIGGER ledger_line_entry_balanced
    AFTER INSERT ON ledger_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();

-- An entry without lines would balance vacuously: refuse it at commit too.
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

-- Posted is final: corrections are reversing entries, never edits.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entry_immutable
    BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_line_immutable
    BEFORE UPDATE OR DELETE ON ledger_journalline
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_reduction_immutable
    BEFORE UPDATE OR DELETE ON ledger_recognitionreduction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_account_not_deleted
    BEFORE DELETE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_schedule_not_deleted
    BEFORE DELETE ON ledger_recognitionschedule
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- An account's identity and a schedule's terms never change (their totals and progress do).
-- Column-specific triggers: the balance and progress updates do not fire them at all.
CREATE OR REPLACE FUNCTION ledger_account_identity_unchanged() RETURNS trigger AS $$
BEGIN
    IF (OLD.code, OLD.currency, OLD.party, OLD.type)
       IS DISTINCT FROM (NEW.code, NEW.currency, NEW.party, NEW.type) THEN
        RAISE EXCEPTION 'a ledger account never changes its code, currency, party or type'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION ledger_schedule_terms_unchanged() RETURNS trigger AS $$
BEGIN
    IF (OLD.source_type, OLD.source_id, OLD.currency, OLD.amount, OLD.service_start,
        OLD.service_end, OLD.revenue_account)
       IS DISTINCT FROM (NEW.source_type, NEW.source_id, NEW.currency, NEW.amount,
        NEW.service_start, NEW.service_end, NEW.revenue_account) THEN
        RAISE EXCEPTION 'a recognition schedule never changes its terms'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_account_identity
    BEFORE UPDATE OF code, currency, party, type ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_account_identity_unchanged();
CREATE TRIGGER ledger_schedule_terms
    BEFORE UPDATE OF source_type, source_id, currency, amount, service_start, service_end,
        revenue_account ON ledger_recognitionschedule
    FOR EACH ROW EXECUTE FUNCTION ledger_schedule_terms_unchanged();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS ledger_schedule_terms ON ledger_recognitionschedule;
DROP TRIGGER IF EXISTS ledger_account_identity ON ledger_account;
DROP FUNCTION IF EXISTS ledger_schedule_terms_unchanged();
DROP FUNCTION IF EXISTS ledger_account_identity_unchanged();
DROP TRIGGER IF EXISTS ledger_schedule_not_deleted ON ledger_recognitionschedule;
DROP TRIGGER IF EXISTS ledger_account_not_deleted ON ledger_account;
DROP TRIGGER IF EXISTS ledger_reduction_immutable ON ledger_recognitionreduction;
DROP TRIGGER IF EXISTS ledger_line_immutable ON ledger_journalline;
DROP TRIGGER IF EXISTS ledger_entry_immutable ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_refuse_change();
DROP TRIGGER IF EXISTS ledger_entry_has_lines ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_check_entry_has_lines();
DROP TRIGGER IF EXISTS ledger_line_entry_balanced ON ledger_journalline;
DROP FUNCTION IF EXISTS ledger_check_entry_balanced();
ALTER TABLE ledger_journalline DROP CONSTRAINT IF EXISTS ledger_line_account_currency_fk;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
