"""operator keys audit log verification and credential fields

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=False),
    sa.Column('details_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_tenant_at', ['tenant_id', 'at'], unique=False)

    op.create_table('operator_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('operator_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_keys_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credential_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('hook_secret_enc', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_contact_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_verified_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_verify_ok', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('last_verify_error', sa.Text(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('last_verify_error')
        batch_op.drop_column('last_verify_ok')
        batch_op.drop_column('last_verified_at')

    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_column('last_contact_at')
        batch_op.drop_column('hook_secret_enc')
        batch_op.drop_column('credential_expires_at')

    with op.batch_alter_table('operator_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_keys_tenant_id'))

    op.drop_table('operator_keys')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_tenant_at')

    op.drop_table('audit_log')

