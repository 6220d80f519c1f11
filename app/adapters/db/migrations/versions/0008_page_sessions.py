"""page sessions: each signed-in browser session has a row, which signing out ends

The session cookie is signed but held by the browser: without a row on the server, a copy of
it taken before signing out kept working until the cookie's lifetime ran out.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import app.adapters.db.types


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('page_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('token_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', app.adapters.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', app.adapters.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_page_sessions_token_id_api_tokens')),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_page_sessions'))
    )


def downgrade() -> None:
    op.drop_table('page_sessions')
