"""repository settings for restores, and warnings on job items

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('settings_json', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('settings_recorded_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings_json', sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_column('warnings_json')

    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('settings_recorded_at')
        batch_op.drop_column('settings_json')
