"""SQLAlchemy 2 models. Tenants are Bitbucket workspaces, keyed by workspace UUID."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone

from sqlalchemy import (Boolean, DateTime, ForeignKey, Index, Integer, BigInteger, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str = "") -> str:
    """A time-ordered, unguessable id (sortable by creation time)."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    """One Bitbucket workspace, whatever install path connected it."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("t"))
    workspace_uuid: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_slug: Mapped[str] = mapped_column(String(255), index=True)
    workspace_name: Mapped[str] = mapped_column(String(255), default="")
    scope_mode: Mapped[str] = mapped_column(String(16), default="all")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Installation(Base):
    """A binding of a tenant to an install path (Connect clientKey, Forge install, token credential)."""

    __tablename__ = "installations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("i"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    path: Mapped[str] = mapped_column(String(16))  # connect | forge | token
    client_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    app_key: Mapped[str] = mapped_column(String(255), default="")
    secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_url: Mapped[str] = mapped_column(String(512), default="")
    base_api_url: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(32), default="active")
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_expires_at: Mapped[float | None] = mapped_column(nullable=True)
    credential_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hook_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    details_json: Mapped[str] = mapped_column(Text, default="{}")


class Repository(Base):
    """A repository we know of, keyed by its Bitbucket UUID (renames never fork a backup)."""

    __tablename__ = "repositories"
    __table_args__ = (
        UniqueConstraint("tenant_id", "uuid", name="uq_repositories_tenant_uuid"),
        Index("ix_repositories_tenant_slug", "tenant_id", "slug"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("r"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    uuid: Mapped[str] = mapped_column(String(40))
    slug: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    full_name: Mapped[str] = mapped_column(String(512), default="")
    clone_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    vault_path: Mapped[str] = mapped_column(String(512))
    scope_choice: Mapped[str | None] = mapped_column(String(16), nullable=True)  # include | exclude
    state: Mapped[str] = mapped_column(String(32), default="pending")  # pending|syncing|ok|failing
    last_backup_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deleted_upstream: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    requested_gen: Mapped[int] = mapped_column(Integer, default=0)
    synced_gen: Mapped[int] = mapped_column(Integer, default=0)
    pending_trigger: Mapped[str | None] = mapped_column(String(16), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    snapshot_count: Mapped[int] = mapped_column(Integer, default=0)
    last_fsck_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_maintenance_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_verify_ok: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    last_verify_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The latest known repository settings a restore can give back (description, privacy, project,
    # language, fork policy, main branch) as JSON, and when Strongroom last saw them change.
    settings_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Snapshot(Base):
    """A complete, durable point-in-time ref map of one repository."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_repo_taken", "repository_id", "taken_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repository_id: Mapped[str] = mapped_column(ForeignKey("repositories.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16))
    refs_json: Mapped[str] = mapped_column(Text)
    changes_json: Mapped[str] = mapped_column(Text, default="{}")


class Event(Base):
    """The webhook outbox: recorded before acknowledging, drained by workers."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("tenant_id", "delivery_id", name="uq_events_delivery"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("e"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    delivery_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    event_key: Mapped[str] = mapped_column(String(64))
    payload_json: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Job(Base):
    """A user- or schedule-initiated unit of work whose progress can be polled."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("j"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    params_json: Mapped[str] = mapped_column(Text, default="{}")


class JobItem(Base):
    """One repository's part of a job; done once a sync covering its request finished."""

    __tablename__ = "job_items"
    __table_args__ = (Index("ix_job_items_repo_state", "repository_id", "state"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    repository_id: Mapped[str] = mapped_column(ForeignKey("repositories.id"))
    requested_gen: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # a JSON list of strings


class AccessToken(Base):
    """A read-only credential for cloning from backups; only its hash is stored."""

    __tablename__ = "access_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("a"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    label: Mapped[str] = mapped_column(String(255), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OperatorKey(Base):
    """An operator credential for one tenant's API (any install path); only its hash is stored."""

    __tablename__ = "operator_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("k"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    label: Mapped[str] = mapped_column(String(255), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """Who did what, when: restores, recoveries, exports, token and scope changes."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("l"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512), default="")
    details_json: Mapped[str] = mapped_column(Text, default="{}")
