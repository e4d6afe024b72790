"""room for years of records: BIGINT keys for stamps, quota entries, the audit log, job runs and the outbox

Revision ID: 0005_bigint_keys
Revises: 0004_history_audit
Create Date: 2026-12-01 09:00:00

PostgreSQL: each ``id`` becomes BIGINT (``ALTER COLUMN ... TYPE``, which rewrites the table under
an exclusive lock: a few seconds per million rows, so run it in a maintenance window) and the
sequence behind it is widened with ``ALTER SEQUENCE ... AS BIGINT`` (a SERIAL sequence is INTEGER
and would stop at 2^31 - 1 whatever the column). No foreign key points at these tables. The
append-only triggers of ``audit_log`` and ``quota_entries`` stay: a type change keeps them.

SQLite: nothing to do. An ``INTEGER PRIMARY KEY`` is SQLite's 64-bit rowid already, and the models
keep INTEGER there (``BigKey``), because a column declared BIGINT would not be that rowid alias.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_bigint_keys'
down_revision = '0004_history_audit'
branch_labels = None
depends_on = None

TABLES = ('stamps', 'quota_entries', 'audit_log', 'job_runs', 'outbox_emails')


def _retype(sql_type):
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN id TYPE {sql_type}')
        sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {'table': table}).scalar()
        if sequence:
            op.execute(f'ALTER SEQUENCE {sequence} AS {sql_type}')


def upgrade():
    _retype('BIGINT')


def downgrade():
    # Refused by PostgreSQL ("integer out of range") once any id has passed 2^31 - 1.
    _retype('INTEGER')
