"""bank statements matched to invoices: bank_statements, bank_lines, bank_matches; reversed payments

Revision ID: 0012_bank_statements
Revises: 0012_coretax
Create Date: 2026-12-01 09:00:00

``bank_lines.line_key`` is unique: a line uploaded twice (the same statement, or two statements that
overlap in dates) is stored once, so its payments can never be recorded twice. ``bank_matches`` links
each payment recorded from a bank line to that line. A payment is never deleted: un-matching a line
reverses its payments (``payments.reversed_at``, ``reversed_by_id``, ``reversal_reason``).

Plain CREATE TABLE and ADD COLUMN (no batch copy of ``payments`` on SQLite: its new foreign key is
declared in the ADD COLUMN itself, which SQLite allows for a column that defaults to NULL).
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_bank_statements'
down_revision = '0012_coretax'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bank_statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bank', sa.String(length=20), nullable=False),
    sa.Column('account', sa.String(length=40), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=True),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.Column('lines_read', sa.Integer(), nullable=False),
    sa.Column('lines_new', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_bank_statements_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_statements'))
    )
    op.create_table('bank_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('line_key', sa.String(length=64), nullable=False),
    sa.Column('bank', sa.String(length=20), nullable=False),
    sa.Column('account', sa.String(length=40), nullable=False),
    sa.Column('booked_on', sa.Date(), nullable=False),
    sa.Column('credit', sa.Boolean(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=True),
    sa.Column('file_row', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('open', 'matched', 'ignored', name='banklinestatus', native_enum=False, length=10),
              nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_bank_lines_amount_positive')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_bank_lines_decided_by_id_users')),
    sa.ForeignKeyConstraint(['statement_id'], ['bank_statements.id'],
                            name=op.f('fk_bank_lines_statement_id_bank_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_lines')),
    sa.UniqueConstraint('line_key', name=op.f('uq_bank_lines_line_key'))
    )
    op.create_index('ix_bank_lines_status_day', 'bank_lines', ['status', 'booked_on'])
    op.create_index(op.f('ix_bank_lines_statement_id'), 'bank_lines', ['statement_id'])
    op.create_table('bank_matches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bank_line_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bank_line_id'], ['bank_lines.id'], name=op.f('fk_bank_matches_bank_line_id_bank_lines')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_bank_matches_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_bank_matches_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_matches')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_bank_matches_payment_id'))
    )
    op.create_index(op.f('ix_bank_matches_bank_line_id'), 'bank_matches', ['bank_line_id'])
    op.create_index(op.f('ix_bank_matches_invoice_id'), 'bank_matches', ['invoice_id'])

    op.add_column('payments', sa.Column('reversed_at', sa.DateTime(), nullable=True))
    op.add_column('payments', sa.Column('reversal_reason', sa.Text(), nullable=True))
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE payments ADD COLUMN reversed_by_id INTEGER '
                   'CONSTRAINT fk_payments_reversed_by_id_users REFERENCES users (id)')
    else:
        op.add_column('payments', sa.Column('reversed_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_payments_reversed_by_id_users'), 'payments', 'users', ['reversed_by_id'], ['id'])


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite 3.35+ drops a plain column; the inline foreign key goes with it.
        op.execute('ALTER TABLE payments DROP COLUMN reversed_by_id')
    else:
        op.drop_constraint(op.f('fk_payments_reversed_by_id_users'), 'payments', type_='foreignkey')
        op.drop_column('payments', 'reversed_by_id')
    op.drop_column('payments', 'reversal_reason')
    op.drop_column('payments', 'reversed_at')
    op.drop_index(op.f('ix_bank_matches_invoice_id'), table_name='bank_matches')
    op.drop_index(op.f('ix_bank_matches_bank_line_id'), table_name='bank_matches')
    op.drop_table('bank_matches')
    op.drop_index(op.f('ix_bank_lines_statement_id'), table_name='bank_lines')
    op.drop_index('ix_bank_lines_status_day', table_name='bank_lines')
    op.drop_table('bank_lines')
    op.drop_table('bank_statements')
