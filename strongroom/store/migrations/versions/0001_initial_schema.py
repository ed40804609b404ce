"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('tenants',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_uuid', sa.String(length=40), nullable=False),
    sa.Column('workspace_slug', sa.String(length=255), nullable=False),
    sa.Column('workspace_name', sa.String(length=255), nullable=False),
    sa.Column('scope_mode', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_sweep_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_uuid')
    )
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenants_workspace_slug'), ['workspace_slug'], unique=False)

    op.create_table('access_tokens',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('delivery_id', sa.String(length=128), nullable=True),
    sa.Column('event_key', sa.String(length=64), nullable=False),
    sa.Column('payload_json', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('processed_at', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'delivery_id', name='uq_events_delivery')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_processed_at'), ['processed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('installations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('path', sa.String(length=16), nullable=False),
    sa.Column('client_key', sa.String(length=255), nullable=True),
    sa.Column('app_key', sa.String(length=255), nullable=False),
    sa.Column('secret_enc', sa.Text(), nullable=True),
    sa.Column('base_url', sa.String(length=512), nullable=False),
    sa.Column('base_api_url', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('installed_at', sa.DateTime(), nullable=False),
    sa.Column('uninstalled_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('token_enc', sa.Text(), nullable=True),
    sa.Column('token_expires_at', sa.Double(), nullable=True),
    sa.Column('details_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_key')
    )
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_installations_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('repositories',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('uuid', sa.String(length=40), nullable=False),
    sa.Column('slug', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=512), nullable=False),
    sa.Column('clone_url', sa.String(length=1024), nullable=True),
    sa.Column('vault_path', sa.String(length=512), nullable=False),
    sa.Column('scope_choice', sa.String(length=16), nullable=True),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('last_backup_at', sa.DateTime(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_code', sa.String(length=64), nullable=True),
    sa.Column('deleted_upstream', sa.Boolean(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.Column('requested_gen', sa.Integer(), nullable=False),
    sa.Column('synced_gen', sa.Integer(), nullable=False),
    sa.Column('pending_trigger', sa.String(length=16), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('snapshot_count', sa.Integer(), nullable=False),
    sa.Column('last_fsck_at', sa.DateTime(), nullable=True),
    sa.Column('last_maintenance_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'uuid', name='uq_repositories_tenant_uuid')
    )
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.create_index('ix_repositories_tenant_slug', ['tenant_id', 'slug'], unique=False)

    op.create_table('job_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('repository_id', sa.String(length=40), nullable=False),
    sa.Column('requested_gen', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_items_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_job_items_repo_state', ['repository_id', 'state'], unique=False)

    op.create_table('snapshots',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('repository_id', sa.String(length=40), nullable=False),
    sa.Column('taken_at', sa.DateTime(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('refs_json', sa.Text(), nullable=False),
    sa.Column('changes_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_snapshots_repo_taken', ['repository_id', 'taken_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_snapshots_repo_taken')

    op.drop_table('snapshots')
    with op.batch_alter_table('job_items', schema=None) as batch_op:
        batch_op.drop_index('ix_job_items_repo_state')
        batch_op.drop_index(batch_op.f('ix_job_items_job_id'))

    op.drop_table('job_items')
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_index('ix_repositories_tenant_slug')

    op.drop_table('repositories')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_tenant_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_installations_tenant_id'))

    op.drop_table('installations')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_events_processed_at'))

    op.drop_table('events')
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_tenant_id'))

    op.drop_table('access_tokens')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenants_workspace_slug'))

    op.drop_table('tenants')

