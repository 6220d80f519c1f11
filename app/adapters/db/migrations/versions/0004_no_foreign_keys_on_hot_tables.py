"""no foreign keys on the ledger and statement lines: references are checked by ledger verify

The ledger tables and statement lines are append-only (lines change status) and written only by
the services, in bulk or on the hottest paths; a foreign key costs PostgreSQL a lookup and a
row lock with its WAL record per inserted row. ``ledger verify`` checks these references.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# (table, constraint, column, referred table)
FOREIGN_KEYS = (
    ('ledger_transactions', 'fk_ledger_transactions_account_id_accounts', 'account_id', 'accounts'),
    ('ledger_entries', 'fk_ledger_entries_account_id_accounts', 'account_id', 'accounts'),
    ('ledger_entries', 'fk_ledger_entries_transaction_id_ledger_transactions', 'transaction_id', 'ledger_transactions'),
    ('statement_lines', 'fk_statement_lines_account_id_accounts', 'account_id', 'accounts'),
    ('statement_lines', 'fk_statement_lines_statement_id_statements', 'statement_id', 'statements'),
    ('statement_lines', 'fk_statement_lines_suggested_account_id_accounts', 'suggested_account_id', 'accounts'),
)


def upgrade() -> None:
    for table, name, _column, _referred in FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    for table, name, column, referred in reversed(FOREIGN_KEYS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, referred, [column], ['id'])
