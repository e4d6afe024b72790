"""taxpayer: the 16-digit form of each NPWP, unique per WAPU and per open registration

A 15-digit NPWP and its 16-digit form (``0`` + the 15) are one taxpayer. The services already
refuse the second spelling; the unique indexes make the database refuse it too, so two requests
at the same instant cannot both get through. Plain ADD COLUMN and CREATE INDEX: no table copy.

Revision ID: 0010_taxpayer
Revises: 0009_people
Create Date: 2026-11-30 19:25:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_taxpayer'
down_revision = '0009_people'
branch_labels = None
depends_on = None

KEY = "CASE WHEN length(npwp) = 15 THEN '0' || npwp ELSE npwp END"
OPEN = "state <> 'rejected'"


def upgrade():
    conn = op.get_bind()
    for table, where in (("wapus", "1 = 1"), ("registrations", OPEN)):
        twice = conn.execute(sa.text(
            f"SELECT {KEY} AS taxpayer FROM {table} WHERE {where} GROUP BY {KEY} HAVING count(*) > 1")).scalars().all()
        if twice:
            raise SystemExit(f"0010_taxpayer: these taxpayers have two {table} rows under the two spellings of "
                             f"their NPWP: {', '.join(twice)}. Resolve them (reject one registration, or merge the "
                             "WAPUs) and run the upgrade again; nothing was changed.")
    op.add_column('wapus', sa.Column('taxpayer', sa.String(length=16), nullable=True))
    op.add_column('registrations', sa.Column('taxpayer', sa.String(length=16), nullable=True))
    op.execute(f"UPDATE wapus SET taxpayer = {KEY}")
    op.execute(f"UPDATE registrations SET taxpayer = {KEY}")
    op.create_index('uq_wapus_taxpayer', 'wapus', ['taxpayer'], unique=True)
    op.create_index('uq_registrations_taxpayer_open', 'registrations', ['taxpayer'], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade():
    op.drop_index('uq_registrations_taxpayer_open', table_name='registrations',
                  sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.drop_index('uq_wapus_taxpayer', table_name='wapus')
    op.drop_column('registrations', 'taxpayer')
    op.drop_column('wapus', 'taxpayer')
