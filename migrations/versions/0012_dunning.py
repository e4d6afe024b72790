"""reminders (dunning) and disputes: dunning_steps, dunning_sent, invoice_disputes

Revision ID: 0012_dunning
Revises: 0012_receipts
Create Date: 2026-12-01 09:00:00

``dunning_steps``: the distributor's reminder schedule (offset in days from the due date, the
mail's subject and text in Indonesian with placeholders). The default schedule is created on first
use by ``scm.billing.dunning.schedule`` (not here: it is the app's text, kept in one place).

``dunning_sent``: one row per invoice and step sent (or skipped), unique, written in the same
transaction as the queued mail: a step is never sent twice.

``invoice_disputes``: disputes of an invoice; reminders pause while one is open
(``open_invoice_id`` is unique and set only while it is open). Plain CREATE TABLE: no table copies.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_dunning'
down_revision = '0012_receipts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dunning_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('offset_days', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['changed_by_id'], ['users.id'], name=op.f('fk_dunning_steps_changed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_steps'))
    )
    op.create_table('dunning_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Enum('sent', 'skipped', name='dunningoutcome', native_enum=False, length=10),
              nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('mails', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_dunning_sent_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['step_id'], ['dunning_steps.id'], name=op.f('fk_dunning_sent_step_id_dunning_steps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_sent')),
    sa.UniqueConstraint('invoice_id', 'step_id', name='uq_dunning_sent_invoice_step')
    )
    op.create_table('invoice_disputes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('open_invoice_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_invoice_disputes_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['users.id'], name=op.f('fk_invoice_disputes_opened_by_id_users')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'],
                            name=op.f('fk_invoice_disputes_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_disputes')),
    sa.UniqueConstraint('open_invoice_id', name=op.f('uq_invoice_disputes_open_invoice_id'))
    )
    op.create_index(op.f('ix_invoice_disputes_invoice_id'), 'invoice_disputes', ['invoice_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_invoice_disputes_invoice_id'), table_name='invoice_disputes')
    op.drop_table('invoice_disputes')
    op.drop_table('dunning_sent')
    op.drop_table('dunning_steps')
