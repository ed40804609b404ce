"""Read-only access tokens for cloning from backups (shown once, stored only as a hash)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from . import audit
from .context import Context
from .errors import AuthError, InvalidInput, NotFound
from .store.crypto import hash_token
from .store.models import AccessToken, Tenant, utcnow

TOKEN_PREFIX = "srt_"
CLONE_USERNAME = "x-token-auth"
MAX_DAYS = 3650


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str
    username: str
    label: str
    expires_at: datetime | None


def _token_view(row: AccessToken) -> dict:
    return {"id": row.id, "label": row.label, "username": CLONE_USERNAME,
            "created_at": row.created_at, "expires_at": row.expires_at,
            "revoked_at": row.revoked_at, "last_used_at": row.last_used_at}


def create_access_token(ctx: Context, tenant_id: str, label: str, expires_in_days: int | None, *,
                        actor: str = "") -> IssuedToken:
    """Mint a token for this tenant only; the plaintext is returned once and never stored."""
    if not isinstance(label, str) or len(label) > 255:
        raise InvalidInput("label must be a string of at most 255 characters")
    if expires_in_days is not None and (isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int)
                                        or not 1 <= expires_in_days <= MAX_DAYS):
        raise InvalidInput(f"expires_in_days must be an integer from 1 to {MAX_DAYS}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    row = AccessToken(tenant_id=tenant_id, label=label, token_hash=hash_token(token), expires_at=expires)
    with ctx.db.session() as s:
        s.add(row)
        s.flush()
        audit.record(s, tenant_id, actor, "access_token.create", row.id, {"label": label, "expires_at": expires})
    return IssuedToken(row.id, token, CLONE_USERNAME, label, expires)


def list_access_tokens(ctx: Context, tenant_id: str) -> list[dict]:
    with ctx.db.session() as s:
        rows = s.scalars(select(AccessToken).where(AccessToken.tenant_id == tenant_id)
                         .order_by(AccessToken.created_at.desc())).all()
        return [_token_view(r) for r in rows]


def revoke_access_token(ctx: Context, tenant_id: str, token_id: str, *, actor: str = "") -> None:
    """Revoke one of this tenant's tokens (another tenant's id is simply not found)."""
    with ctx.db.session() as s:
        row = s.get(AccessToken, token_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound("no such access token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.record(s, tenant_id, actor, "access_token.revoke", row.id, {"label": row.label})


def authenticate_clone(ctx: Context, workspace_slug: str, password: str | None) -> Tenant:
    """The tenant whose valid token this is, if it owns ``workspace_slug``; else AuthError."""
    if not password or not password.startswith(TOKEN_PREFIX):
        raise AuthError("a Strongroom access token is required")
    with ctx.db.session() as s:
        row = s.scalars(select(AccessToken).where(AccessToken.token_hash == hash_token(password))).first()
        now = utcnow()
        if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
            raise AuthError("invalid, revoked or expired access token")
        tenant = s.get(Tenant, row.tenant_id)
        if tenant is None or tenant.workspace_slug != workspace_slug:
            raise AuthError("this token does not belong to that workspace")
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        s.expunge(tenant)
        return tenant
