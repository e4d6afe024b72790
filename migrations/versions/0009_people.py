"""people: forgotten-password links, supervisors' stand-ins, decisions recorded on behalf of a supervisor

Revision ID: 0009_people
Revises: 0008_file_store
Create Date: 2026-11-30 18:09:49
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_people'
down_revision = '0008_file_store'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('password_reset_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_reset_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_tokens_token_hash'))
    )
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('stand_ins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('substitute_id', sa.Integer(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('end_date >= start_date', name=op.f('ck_stand_ins_dates_in_order')),
    sa.CheckConstraint('principal_id <> substitute_id', name=op.f('ck_stand_ins_not_oneself')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_stand_ins_created_by_id_users')),
    sa.ForeignKeyConstraint(['principal_id'], ['users.id'], name=op.f('fk_stand_ins_principal_id_users')),
    sa.ForeignKeyConstraint(['substitute_id'], ['users.id'], name=op.f('fk_stand_ins_substitute_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stand_ins'))
    )
    with op.batch_alter_table('stand_ins', schema=None) as batch_op:
        batch_op.create_index('ix_stand_ins_principal_dates', ['principal_id', 'start_date', 'end_date'], unique=False)
        batch_op.create_index('ix_stand_ins_substitute_dates', ['substitute_id', 'start_date', 'end_date'], unique=False)

    with op.batch_alter_table('purchase_order_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_purchase_order_events_on_behalf_of_id_users'), 'users', ['on_behalf_of_id'], ['id'])

    with op.batch_alter_table('purchase_request_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_purchase_request_events_on_behalf_of_id_users'), 'users', ['on_behalf_of_id'], ['id'])



def downgrade():
    with op.batch_alter_table('purchase_request_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_purchase_request_events_on_behalf_of_id_users'), type_='foreignkey')
        batch_op.drop_column('on_behalf_of_id')

    with op.batch_alter_table('purchase_order_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_purchase_order_events_on_behalf_of_id_users'), type_='foreignkey')
        batch_op.drop_column('on_behalf_of_id')

    with op.batch_alter_table('stand_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_stand_ins_substitute_dates')
        batch_op.drop_index('ix_stand_ins_principal_dates')

    op.drop_table('stand_ins')
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_tokens_user_id'))

    op.drop_table('password_reset_tokens')
