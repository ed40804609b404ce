"""Operator keys: an API credential for one tenant, whatever path connected it (INTERFACE.md §3.0).

Shown once, stored as a hash, valid until revoked, also after a disconnect or uninstall, so that
backups stay readable and restorable.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from .context import Context
from .errors import AuthError, InvalidInput, NotFound
from .store.crypto import hash_token
from .store.models import OperatorKey, Tenant, utcnow

KEY_PREFIX = "sro_"


@dataclass(frozen=True)
class IssuedKey:
    id: str
    key: str
    tenant_id: str
    workspace_slug: str


def _tenant_by_workspace(s, workspace: str) -> Tenant:
    tenant = s.scalars(select(Tenant).where((Tenant.workspace_slug == workspace)
                                            | (Tenant.workspace_uuid == workspace))).first()
    if tenant is None:
        raise NotFound(f"no tenant for workspace {workspace!r}")
    return tenant


def create_operator_key(ctx: Context, workspace: str, label: str = "") -> IssuedKey:
    """Mint a key for the tenant of ``workspace`` (slug or {uuid})."""
    if len(label) > 255:
        raise InvalidInput("label is too long")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with ctx.db.session() as s:
        tenant = _tenant_by_workspace(s, workspace)
        row = OperatorKey(tenant_id=tenant.id, label=label, key_hash=hash_token(key))
        s.add(row)
        s.flush()
        return IssuedKey(row.id, key, tenant.id, tenant.workspace_slug)


def revoke_operator_key(ctx: Context, key_id: str) -> None:
    with ctx.db.session() as s:
        row = s.get(OperatorKey, key_id)
        if row is None:
            raise NotFound("no such operator key")
        if row.revoked_at is None:
            row.revoked_at = utcnow()


def list_operator_keys(ctx: Context, workspace: str | None = None) -> list[dict]:
    with ctx.db.session() as s:
        query = select(OperatorKey, Tenant.workspace_slug).join(Tenant, Tenant.id == OperatorKey.tenant_id)
        if workspace:
            query = query.where((Tenant.workspace_slug == workspace) | (Tenant.workspace_uuid == workspace))
        return [{"id": k.id, "workspace": slug, "label": k.label, "created_at": k.created_at,
                 "revoked_at": k.revoked_at, "last_used_at": k.last_used_at}
                for k, slug in s.execute(query.order_by(OperatorKey.created_at))]


def authenticate_operator_key(ctx: Context, key: str) -> tuple[str, str]:
    """(tenant id, key id) for a valid, unrevoked key; AuthError otherwise."""
    if not key.startswith(KEY_PREFIX):
        raise AuthError("not an operator key")
    with ctx.db.session() as s:
        row = s.scalars(select(OperatorKey).where(OperatorKey.key_hash == hash_token(key))).first()
        if row is None or row.revoked_at is not None:
            raise AuthError("invalid or revoked operator key", code="invalid_operator_key")
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        return row.tenant_id, row.id
