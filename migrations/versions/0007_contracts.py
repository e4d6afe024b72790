"""contracts over time (renewals, amendments, early ends), WAPU suspension reason, company-change requests, contract expiry warnings

Revision ID: 0007_contracts
Revises: 0005_bigint_keys
Create Date: 2026-11-30 18:08:05.894187

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_contracts'
down_revision = "0005_bigint_keys"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('company_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wapu_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('submitted', 'approved', 'rejected', name='changestate', native_enum=False, length=20), nullable=False),
    sa.Column('old_name', sa.String(length=200), nullable=False),
    sa.Column('old_address', sa.Text(), nullable=False),
    sa.Column('old_npwp', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('npwp', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_company_changes_decided_by_id_users')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_company_changes_requested_by_id_users')),
    sa.ForeignKeyConstraint(['wapu_id'], ['wapus.id'], name=op.f('fk_company_changes_wapu_id_wapus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_company_changes'))
    )
    with op.batch_alter_table('company_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_company_changes_wapu_id'), ['wapu_id'], unique=False)
        batch_op.create_index('uq_company_changes_open', ['wapu_id'], unique=True, sqlite_where=sa.text("state = 'submitted'"), postgresql_where=sa.text("state = 'submitted'"))

    op.create_table('contract_warnings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('wapu_id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contract_id'], ['contracts.id'], name=op.f('fk_contract_warnings_contract_id_contracts')),
    sa.ForeignKeyConstraint(['wapu_id'], ['wapus.id'], name=op.f('fk_contract_warnings_wapu_id_wapus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_warnings')),
    sa.UniqueConstraint('contract_id', 'last_day', 'days', name='uq_contract_warnings_contract_days')
    )
    with op.batch_alter_table('contract_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_warnings_wapu_id'), ['wapu_id'], unique=False)

    # Plain ADD COLUMNs (no batch copy: contracts and wapus are referenced by many tables).
    op.add_column('contracts', sa.Column('kind', sa.Enum('initial', 'renewal', 'amendment', name='contractkind', native_enum=False, length=10), nullable=False, server_default='initial'))
    op.add_column('contracts', sa.Column('ended_from', sa.Date(), nullable=True))
    op.add_column('contracts', sa.Column('ended_how', sa.Enum('terminated', 'superseded', name='contractend', native_enum=False, length=10), nullable=True))
    op.add_column('contracts', sa.Column('ended_reason', sa.Text(), nullable=True))
    op.add_column('wapus', sa.Column('status_reason', sa.Text(), nullable=True))



def downgrade():
    # The new tables first (they point at wapus and contracts), then the columns with a plain
    # ALTER TABLE ... DROP COLUMN: a batch copy of wapus would drop a table other tables point at,
    # which SQLite's foreign keys refuse once rows exist.
    with op.batch_alter_table('contract_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_warnings_wapu_id'))
    op.drop_table('contract_warnings')
    with op.batch_alter_table('company_changes', schema=None) as batch_op:
        batch_op.drop_index('uq_company_changes_open', sqlite_where=sa.text("state = 'submitted'"), postgresql_where=sa.text("state = 'submitted'"))
        batch_op.drop_index(batch_op.f('ix_company_changes_wapu_id'))
    op.drop_table('company_changes')

    op.drop_column('wapus', 'status_reason')
    for column in ('ended_reason', 'ended_how', 'ended_from', 'kind'):
        op.drop_column('contracts', column)
