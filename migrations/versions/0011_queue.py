"""task queue and documents rendered once: background_tasks, billing_documents

Revision ID: 0011_queue
Revises: 0010_taxpayer
Create Date: 2026-11-30 21:00:00

``background_tasks``: heavy work a person started (a month's workbook, issuing the month...), run by
the queue's workers; the row is the truth, the queue carries only its id.

``billing_documents``: the PDF of each issued invoice and credit note, rendered once and stored
(its bytes in ``file_blobs`` through ``stored_files``); append-only in the database too, like the
audit log. Invoices issued before this revision get theirs the first time they are needed.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_queue'
down_revision = '0010_taxpayer'
branch_labels = None
depends_on = None

APPEND_ONLY = ("billing_documents",)


def upgrade():
    op.create_table('background_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('queued', 'running', 'done', 'failed', name='taskstate', native_enum=False,
                               length=10), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('file_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_background_tasks_file_id_stored_files')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_background_tasks_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_background_tasks'))
    )
    op.create_index('ix_background_tasks_state_locked', 'background_tasks', ['state', 'locked_until'])
    op.create_index('ix_background_tasks_kind_key_state', 'background_tasks', ['kind', 'key', 'state'])
    op.create_index(op.f('ix_background_tasks_user_id'), 'background_tasks', ['user_id'])
    op.create_index(op.f('ix_background_tasks_created_at'), 'background_tasks', ['created_at'])

    op.create_table('billing_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('invoice', 'credit_note', name='documentkind', native_enum=False, length=12),
              nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_billing_documents_file_id_stored_files')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_documents')),
    sa.UniqueConstraint('kind', 'object_id', name='uq_billing_documents_kind_object')
    )
    for table in APPEND_ONLY:  # a stored PDF never changes, not even by hand
        if op.get_bind().dialect.name == "sqlite":
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        else:
            op.execute(f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                       f"BEGIN RAISE EXCEPTION '{table} is append-only'; END $$")
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")


def downgrade():
    for table in APPEND_ONLY:
        if op.get_bind().dialect.name != "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    op.drop_table('billing_documents')
    op.drop_index(op.f('ix_background_tasks_created_at'), table_name='background_tasks')
    op.drop_index(op.f('ix_background_tasks_user_id'), table_name='background_tasks')
    op.drop_index('ix_background_tasks_kind_key_state', table_name='background_tasks')
    op.drop_index('ix_background_tasks_state_locked', table_name='background_tasks')
    op.drop_table('background_tasks')
