"""The settings panel's use cases: open a page from a host JWT, renew its session, summarise a workspace."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .auth import SignedRequest, authenticate_connect
from .backup import active_installation
from .context import Context
from .errors import NotFound
from .jobs import view_job
from .scope import in_scope
from .sessions import mint_session
from .store.models import Installation, Job, Repository, Tenant

# Bitbucket's page JWTs carry no `sub` (reference §3.2); the panel session still names a user.
DEFAULT_USER = "connect-admin"


@dataclass(frozen=True)
class PanelOpening:
    """What a verified page needs to render: the session for its scripts and who it is for."""

    tenant_id: str
    user: str
    session_token: str
    session_expires_at: int
    host_base_url: str | None
    workspace_slug: str
    workspace_name: str


def open_connect_page(ctx: Context, req: SignedRequest) -> PanelOpening:
    """Verify a page request's host JWT (query parameter `jwt`, qsh of this page) and mint a panel session.

    Raises AuthError for a missing, invalid, expired or tampered token; nothing else is read before that.
    """
    ident = authenticate_connect(ctx, req)
    sub = ident.claims.get("sub")
    user = sub if isinstance(sub, str) and sub.strip() else DEFAULT_USER
    return open_session(ctx, ident.tenant_id, user, installation_id=ident.installation_id)


def open_session(ctx: Context, tenant_id: str, user: str, *, installation_id: str | None = None) -> PanelOpening:
    """A panel session for an already authenticated tenant and user (also for the standalone panel)."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("no such tenant")
        inst = s.get(Installation, installation_id) if installation_id else active_installation(s, tenant_id)
        host = inst.base_url.rstrip("/") if inst is not None and inst.path == "connect" and inst.base_url else None
        slug, name = tenant.workspace_slug, tenant.workspace_name or tenant.workspace_slug
    token, expires_at = mint_session(ctx.settings, tenant_id, user)
    return PanelOpening(tenant_id, user, token, expires_at, host, slug, name)


def renew_session(ctx: Context, tenant_id: str, user: str) -> tuple[str, int]:
    """A fresh panel session token for a caller that is already authenticated for ``tenant_id``."""
    return mint_session(ctx.settings, tenant_id, user)


def workspace_overview(ctx: Context, tenant_id: str) -> dict:
    """Is everything protected? Counts by state, bytes kept and the latest whole-workspace job.

    A constant number of queries whatever the number of repositories (one grouped aggregate).
    """
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        rows = s.execute(
            select(Repository.state, Repository.scope_choice, Repository.deleted_upstream,
                   func.count(), func.coalesce(func.sum(Repository.size_bytes), 0))
            .where(Repository.tenant_id == tenant_id)
            .group_by(Repository.state, Repository.scope_choice, Repository.deleted_upstream)).all()
        summary = _summarise(tenant.scope_mode, rows)
        job = s.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.kind == "backup_all")
                        .order_by(Job.created_at.desc(), Job.id.desc()).limit(1)).first()
        summary["latest_job"] = view_job(s, tenant_id, job.id).as_dict() if job else None
        summary["connected"] = active_installation(s, tenant_id) is not None
        return summary


def _summarise(mode: str, rows) -> dict:
    states = {"pending": 0, "syncing": 0, "ok": 0, "failing": 0}
    total = in_scope_count = out_of_scope = deleted = 0
    size = 0
    for state, choice, gone, count, size_bytes in rows:
        total += count
        size += int(size_bytes or 0)
        if gone:
            deleted += count
        elif not in_scope(mode, choice):
            out_of_scope += count
        else:
            in_scope_count += count
            states[state] = states.get(state, 0) + count
    protected = in_scope_count > 0 and states["ok"] == in_scope_count
    return {"scope_mode": mode, "repositories": total, "in_scope": in_scope_count, "states": states,
            "out_of_scope": out_of_scope, "deleted_upstream": deleted, "size_bytes": size,
            "protected": protected}
