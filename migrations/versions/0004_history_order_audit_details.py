"""stamping history in time order; audit entries keep their details and the object's business reference

Revision ID: 0004_history_audit
Revises: 0003_billing
Create Date: 2026-11-30 15:30:00

The audit log is append-only (triggers from 0001): its new columns are added with a plain
ALTER TABLE ADD COLUMN, never a batch copy of the table, so the triggers stay in place.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_history_audit'
down_revision = '0003_billing'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_stamps_wapu_occurred_id', 'stamps', ['wapu_id', 'occurred_at', 'id'], unique=False)
    op.create_index('ix_stamps_occurred_id', 'stamps', ['occurred_at', 'id'], unique=False)
    op.drop_index('ix_stamps_wapu_occurred', table_name='stamps')

    op.add_column('audit_log', sa.Column('details', sa.JSON(), nullable=True))
    op.add_column('audit_log', sa.Column('object_ref', sa.String(length=120), nullable=False, server_default=''))
    op.create_index('ix_audit_log_object_ref', 'audit_log', ['object_ref'], unique=False)


def downgrade():
    op.drop_index('ix_audit_log_object_ref', table_name='audit_log')
    op.drop_column('audit_log', 'object_ref')
    op.drop_column('audit_log', 'details')

    op.create_index('ix_stamps_wapu_occurred', 'stamps', ['wapu_id', 'occurred_at'], unique=False)
    op.drop_index('ix_stamps_occurred_id', table_name='stamps')
    op.drop_index('ix_stamps_wapu_occurred_id', table_name='stamps')
