"""PostgreSQL refuses what must never happen to issued money documents.

- A finalized invoice is never deleted, never goes back to draft, and its number, customer,
  currency, dates of issue and amounts (subtotal, discount, tax, total) never change; only what
  happens to it afterwards moves (status, credit applied, credited, paid, due).
- The lines of a finalized invoice are never inserted, changed or deleted.
- Credit notes are never deleted and only their status changes; their lines never change.
- Balance transactions are append-only.

Errors are raised with SQLSTATE 23000 (integrity_constraint_violation), which Django reports as
an IntegrityError like any other constraint.
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION billing_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is % and is never deleted (void it instead)',
                OLD.number, OLD.status USING ERRCODE = '23000';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND (
        NEW.status = 'draft'
        OR NEW.number IS DISTINCT FROM OLD.number
        OR NEW.sequence_id IS DISTINCT FROM OLD.sequence_id
        OR NEW.sequence_number IS DISTINCT FROM OLD.sequence_number
        OR NEW.customer_id <> OLD.customer_id
        OR NEW.currency <> OLD.currency
        OR NEW.billing_reason <> OLD.billing_reason
        OR NEW.issued_on IS DISTINCT FROM OLD.issued_on
        OR NEW.subtotal <> OLD.subtotal
        OR NEW.discount_total <> OLD.discount_total
        OR NEW.tax_total <> OLD.tax_total
        OR NEW.total <> OLD.total
    ) THEN
        RAISE EXCEPTION 'invoice % is finalized: its number, customer and amounts never change',
            OLD.number USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_invoice_guard
    BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_guard();

CREATE FUNCTION billing_invoiceline_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    invoice_status text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT status INTO invoice_status FROM billing_invoice WHERE id = OLD.invoice_id;
        IF invoice_status IS NOT NULL AND invoice_status <> 'draft' THEN
            RAISE EXCEPTION 'the lines of a finalized invoice never change'
                USING ERRCODE = '23000';
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT status INTO invoice_status FROM billing_invoice WHERE id = NEW.invoice_id;
        IF invoice_status IS NOT NULL AND invoice_status <> 'draft' THEN
            RAISE EXCEPTION 'the lines of a finalized invoice never change'
                USING ERRCODE = '23000';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER billing_invoiceline_guard
    BEFORE INSERT OR UPDATE OR DELETE ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_invoiceline_guard();

CREATE FUNCTION billing_creditnote_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (to_jsonb(NEW) - 'status') <> (to_jsonb(OLD) - 'status') THEN
        RAISE EXCEPTION 'credit note % is issued: only its status changes', OLD.number
            USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_creditnote_guard
    BEFORE UPDATE OR DELETE ON billing_creditnote
    FOR EACH ROW EXECUTE FUNCTION billing_creditnote_guard();

CREATE FUNCTION billing_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never changed or deleted', TG_TABLE_NAME USING ERRCODE = '23000';
END;
$$;

CREATE TRIGGER billing_creditnoteline_append_only
    BEFORE UPDATE OR DELETE ON billing_creditnoteline
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();

CREATE TRIGGER billing_customerbalancetransaction_append_only
    BEFORE UPDATE OR DELETE ON billing_customerbalancetransaction
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
"""

BACKWARD = r"""
DROP TRIGGER billing_customerbalancetransaction_append_only ON billing_customerbalancetransaction;
DROP TRIGGER billing_creditnoteline_append_only ON billing_creditnoteline;
DROP FUNCTION billing_append_only();
DROP TRIGGER billing_creditnote_guard ON billing_creditnote;
DROP FUNCTION billing_creditnote_guard();
DROP TRIGGER billing_invoiceline_guard ON billing_invoiceline;
DROP FUNCTION billing_invoiceline_guard();
DROP TRIGGER billing_invoice_guard ON billing_invoice;
DROP FUNCTION billing_invoice_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
