"""notifies: a partial index for finance's review list instead of the unqueried notify_id index

Nothing looks notifies up by ``notify_id``; finance's console lists those that need review,
newest first, which had no index. The partial index holds only those rows, so the notifies
that credit (nearly all) are written without touching it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alipay_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_alipay_notifications_notify_id')
        batch_op.create_index(
            'ix_alipay_notifications_needs_review',
            ['received_at', 'id'],
            unique=False,
            postgresql_where=sa.text('needs_review'),
            sqlite_where=sa.text('needs_review'),
        )


def downgrade() -> None:
    with op.batch_alter_table('alipay_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_alipay_notifications_needs_review')
        batch_op.create_index('ix_alipay_notifications_notify_id', ['notify_id'], unique=False)
