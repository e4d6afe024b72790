"""receipts: each payment's kuitansi number (gapless per year, unique)

Revision ID: 0012_receipts
Revises: 0011_queue
Create Date: 2026-11-30 21:30:00

Payments recorded from now on get the next number of the year's ``receipt:<year>`` counter in the
transaction that records them; earlier payments keep none (their receipt cannot be printed). The
receipt's PDF is rendered once and stored in ``billing_documents`` (kind ``receipt``). Plain ADD
COLUMN and CREATE INDEX: no table copy.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_receipts'
down_revision = '0011_queue'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('payments', sa.Column('receipt_number', sa.String(length=80), nullable=True))
    op.create_index('uq_payments_receipt_number', 'payments', ['receipt_number'], unique=True)


def downgrade():
    op.drop_index('uq_payments_receipt_number', table_name='payments')
    op.drop_column('payments', 'receipt_number')
