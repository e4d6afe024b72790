"""usage summary: stamps per WAPU, WIB day and state; indexes for the history's filters and the issued quota

``usage_daily`` is filled from the stamps with one INSERT ... SELECT ... GROUP BY; from then on
every stamp movement adds to it in its own transaction (``scm.stamping.summary``). A stamp counts
on the WIB day of its ``occurred_at`` (UTC + 7 hours, no daylight saving: the same day as Python's
``to_wib(moment).date()``).

On PostgreSQL the stamp serial compares byte by byte (collation "C", as on SQLite), so that a
serial prefix is one range of its unique index whatever the database's locale.

Plain CREATE TABLE / CREATE INDEX: no batch copy of a referenced table.

Revision ID: 0013_usage_summary
Revises: 0012_bank_statements
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_usage_summary'
down_revision = '0012_bank_statements'
branch_labels = None
depends_on = None


def _wib_day(dialect):
    if dialect == "sqlite":
        return "date(substr(occurred_at, 1, 19), '+7 hours')"
    return "CAST(occurred_at + interval '7 hours' AS DATE)"


def upgrade():
    dialect = op.get_bind().dialect.name
    op.create_table(
        'usage_daily',
        sa.Column('wapu_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('state', sa.Enum('reserved', 'stamped', 'failed', 'released', name='stampstate',
                                   native_enum=False, length=10), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['wapu_id'], ['wapus.id'], name=op.f('fk_usage_daily_wapu_id_wapus')),
        sa.PrimaryKeyConstraint('wapu_id', 'day', 'state', name=op.f('pk_usage_daily')),
    )
    op.create_index('ix_usage_daily_state_day', 'usage_daily', ['state', 'day', 'wapu_id', 'count'], unique=False)
    day = _wib_day(dialect)
    op.execute(f"INSERT INTO usage_daily (wapu_id, day, state, count) "
               f"SELECT wapu_id, {day}, state, count(*) FROM stamps GROUP BY wapu_id, {day}, state")
    op.create_index('ix_quota_entries_kind_created', 'quota_entries', ['kind', 'created_at'], unique=False)
    if dialect == "postgresql":
        op.execute('ALTER TABLE stamps ALTER COLUMN serial TYPE VARCHAR(64) COLLATE "C"')


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE stamps ALTER COLUMN serial TYPE VARCHAR(64) COLLATE "default"')
    op.drop_index('ix_quota_entries_kind_created', table_name='quota_entries')
    op.drop_index('ix_usage_daily_state_day', table_name='usage_daily')
    op.drop_table('usage_daily')
