"""Coretax e-Faktur: the WAPU's kind, NITKU and kode transaksi; exported batches; faktur numbers

Revision ID: 0012_coretax
Revises: 0012_dunning
Create Date: 2026-12-01 09:00:00

``wapus``: ``kind`` (government treasurer, BUMN, KKKS, other collector), ``nitku`` (22 digits, empty
until set) and ``coretax_transaction_code`` (02/03; empty: the kind's default). Plain ADD COLUMNs.

``coretax_batches`` / ``coretax_batch_invoices``: each export of a month's tax invoices as Coretax
XML (the file in ``stored_files``, its SHA-256) and the invoices in it. ``faktur_numbers``: the
number Coretax assigned to an invoice's tax invoice.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_coretax'
down_revision = '0012_dunning'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('wapus', sa.Column('kind', sa.Enum('government', 'bumn', 'kkks', 'other', name='wapukind',
                                                     native_enum=False, length=12), nullable=True))
    op.add_column('wapus', sa.Column('nitku', sa.String(length=22), nullable=True))
    op.add_column('wapus', sa.Column('coretax_transaction_code', sa.String(length=2), nullable=True))

    op.create_table('coretax_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_coretax_batches_created_by_id_users')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_coretax_batches_file_id_stored_files')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coretax_batches'))
    )
    op.create_index('ix_coretax_batches_period', 'coretax_batches', ['period'])

    op.create_table('coretax_batch_invoices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('transaction_code', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['coretax_batches.id'],
                            name=op.f('fk_coretax_batch_invoices_batch_id_coretax_batches')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_coretax_batch_invoices_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coretax_batch_invoices')),
    sa.UniqueConstraint('batch_id', 'invoice_id', name='uq_coretax_batch_invoices_batch_invoice')
    )
    op.create_index(op.f('ix_coretax_batch_invoices_invoice_id'), 'coretax_batch_invoices', ['invoice_id'])

    op.create_table('faktur_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_faktur_numbers_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_faktur_numbers_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faktur_numbers')),
    sa.UniqueConstraint('invoice_id', name=op.f('uq_faktur_numbers_invoice_id')),
    sa.UniqueConstraint('number', name=op.f('uq_faktur_numbers_number'))
    )


def downgrade():
    op.drop_table('faktur_numbers')
    op.drop_index(op.f('ix_coretax_batch_invoices_invoice_id'), table_name='coretax_batch_invoices')
    op.drop_table('coretax_batch_invoices')
    op.drop_index('ix_coretax_batches_period', table_name='coretax_batches')
    op.drop_table('coretax_batches')
    for column in ('coretax_transaction_code', 'nitku', 'kind'):  # plain DROP COLUMN (SQLite >= 3.35)
        op.drop_column('wapus', column)
