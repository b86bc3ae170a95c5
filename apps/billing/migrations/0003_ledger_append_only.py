"""On PostgreSQL the ledger is append-only in the database too, not only in `apps.billing.ledger`:
a trigger refuses every UPDATE and DELETE of a ledger row, whoever sends it (a shell, a bad
migration, a bug). The one change allowed is the database's own bookkeeping when a staff member
who made a grant is deleted: `actor` becomes NULL (on_delete=SET_NULL) and nothing else moves.

SQLite (local runs and the quick test suite) has no such trigger: this migration does nothing
there.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION billing_ledgerentry_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
        RETURN NEW;  -- the staff member who made this entry was deleted
    END IF;
    RAISE EXCEPTION 'The credit ledger is append-only: % of entry % refused.', TG_OP, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledgerentry_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_ledgerentry_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledgerentry_refuse_change();
"""


def on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # the SQL has % of its own

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_wallets_for_existing_teams")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
