"""Tenant-facing operations behind the JSON API: views, scope changes and on-demand backups."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import func, or_, select

from . import audit
from .backup import active_installation, request_sync
from .connect.payloads import normalize_uuid
from .context import Context
from .errors import Conflict, InvalidInput, NotFound
from .jobs import add_items, create_job, view_job
from .repositories import stored_settings
from .scope import in_scope, in_scope_clause, set_choice, set_mode, should_sync
from .store.models import Installation, Repository, Snapshot, Tenant, utcnow

STATES = ("pending", "syncing", "ok", "failing")


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def installation_view(ctx: Context, tenant_id: str) -> dict:
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        inst = active_installation(s, tenant_id) or s.scalars(
            select(Installation).where(Installation.tenant_id == tenant_id)
            .order_by(Installation.updated_at.desc())).first()
        return {
            "path": inst.path if inst else None,
            "client_key": inst.client_key if inst and inst.path == "connect" else None,
            "workspace": {"uuid": tenant.workspace_uuid, "slug": tenant.workspace_slug,
                          "name": tenant.workspace_name},
            "status": inst.status if inst else "disconnected",
            "installed_at": iso(inst.installed_at) if inst else None,
            "scope_mode": tenant.scope_mode,
            # token mode: when the operator's credential stops working (shown with a warning before)
            "credential_expires_at": iso(inst.credential_expires_at) if inst and inst.path == "token" else None,
        }


def repository_view(tenant: Tenant, repo: Repository) -> dict:
    return {
        "uuid": repo.uuid, "slug": repo.slug, "name": repo.name, "full_name": repo.full_name,
        "in_scope": in_scope(tenant.scope_mode, repo.scope_choice), "scope_choice": repo.scope_choice,
        "state": repo.state, "last_backup_at": iso(repo.last_backup_at), "last_error": repo.last_error,
        "snapshot_count": repo.snapshot_count, "size_bytes": repo.size_bytes,
        "deleted_upstream": repo.deleted_upstream,
        # the last verification drill: when this repository was last proven restorable, and the outcome
        "last_verified_at": iso(repo.last_verified_at), "last_verify_ok": repo.last_verify_ok,
        "last_verify_error": repo.last_verify_error,
        # the latest known settings a restore to a new repository gives back (not per snapshot)
        "settings": stored_settings(repo), "settings_recorded_at": iso(repo.settings_recorded_at),
    }


def list_repositories(ctx: Context, tenant_id: str, *, q: str | None, state: str | None,
                      page: int, pagelen: int) -> tuple[list[dict], int]:
    """One page of the tenant's repositories (filter by name substring and by state)."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        cond = [Repository.tenant_id == tenant_id]
        if q:
            like = f"%{q.lower()}%"
            cond.append(or_(func.lower(Repository.slug).like(like), func.lower(Repository.full_name).like(like),
                            func.lower(Repository.name).like(like)))
        cond.extend(_state_filter(tenant, state))
        total = s.scalar(select(func.count()).select_from(Repository).where(*cond))
        rows = s.scalars(select(Repository).where(*cond).order_by(Repository.slug, Repository.id)
                         .offset((page - 1) * pagelen).limit(pagelen)).all()
        return [repository_view(tenant, r) for r in rows], total


def _state_filter(tenant: Tenant, state: str | None) -> list:
    if not state:
        return []
    if state == "deleted_upstream":
        return [Repository.deleted_upstream.is_(True)]
    if state == "out_of_scope":
        return [~in_scope_clause(tenant.scope_mode)]
    if state in STATES:
        return [Repository.state == state]
    raise InvalidInput(f"unknown state filter {state!r}")


def get_repository(s, tenant_id: str, uuid: str) -> Repository:
    try:
        key = normalize_uuid(uuid)
    except InvalidInput as exc:
        raise NotFound("no such repository") from exc
    repo = s.scalars(select(Repository).where(Repository.tenant_id == tenant_id, Repository.uuid == key)).first()
    if repo is None:
        raise NotFound("no such repository")
    return repo


def repository_detail(ctx: Context, tenant_id: str, uuid: str) -> dict:
    with ctx.db.session() as s:
        return repository_view(s.get(Tenant, tenant_id), get_repository(s, tenant_id, uuid))


def update_scope_mode(ctx: Context, tenant_id: str, mode: object, *, actor: str = "") -> tuple[dict, list[str]]:
    """Switch the workspace mode (explicit choices are kept); returns the view and repositories to sync
    because they just came into scope."""
    if not isinstance(mode, str):
        raise InvalidInput("mode must be a string")
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        before = tenant.scope_mode
        set_mode(tenant, mode)
        audit.record(s, tenant_id, actor, "scope.mode", tenant.workspace_slug, {"from": before, "to": mode})
        to_sync: list[str] = []
        if before != mode and mode == "all":
            newly = s.scalars(select(Repository).where(Repository.tenant_id == tenant_id,
                                                       Repository.scope_choice.is_(None),
                                                       Repository.deleted_upstream.is_(False))).all()
            for repo in newly:
                request_sync(repo, "manual")
                to_sync.append(repo.id)
    return installation_view(ctx, tenant_id), to_sync


def update_repository_scope(ctx: Context, tenant_id: str, uuid: str, included: object, *,
                            actor: str = "") -> tuple[dict, str | None]:
    """Include/exclude a repository; returns its view and the id to sync if it just came into scope."""
    if not isinstance(included, bool):
        raise InvalidInput("in_scope must be true or false")
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        repo = get_repository(s, tenant_id, uuid)
        was = in_scope(tenant.scope_mode, repo.scope_choice)
        set_choice(repo, included)
        audit.record(s, tenant_id, actor, "scope.repository", repo.full_name, {"in_scope": included})
        to_sync = None
        if included and not was and should_sync(tenant, repo):  # catch up on what it missed
            request_sync(repo, "manual")
            to_sync = repo.id
        return repository_view(tenant, repo), to_sync


def start_workspace_backup(ctx: Context, tenant_id: str) -> str:
    """Create a whole-workspace backup job (planned by a worker); returns its id."""
    with ctx.db.session() as s:
        if active_installation(s, tenant_id) is None:
            raise Conflict("the installation is not active; backups are kept but cannot be refreshed")
        return create_job(s, tenant_id, kind="backup_all", trigger="manual").id


def start_repository_backup(ctx: Context, tenant_id: str, uuid: str) -> tuple[str, str]:
    """Request a sync of one repository now; returns (job id, repository id to dispatch)."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        repo = get_repository(s, tenant_id, uuid)
        if active_installation(s, tenant_id) is None:
            raise Conflict("the installation is not active; backups are kept but cannot be refreshed")
        if not should_sync(tenant, repo):
            raise Conflict("the repository is not in scope or was deleted on Bitbucket")
        job = create_job(s, tenant_id, kind="backup_repository", trigger="manual", params={"repository": repo.uuid})
        request_sync(repo, "manual")
        add_items(s, job, [repo])
        job.started_at = utcnow()
        return job.id, repo.id


def job_detail(ctx: Context, tenant_id: str, job_id: str) -> dict:
    with ctx.db.session() as s:
        return view_job(s, tenant_id, job_id).as_dict()


def snapshot_view(row: Snapshot, with_changes: bool = False) -> dict:
    view = {"id": row.id, "taken_at": iso(row.taken_at), "trigger": row.trigger, "refs": json.loads(row.refs_json)}
    if with_changes:
        view["changes"] = json.loads(row.changes_json)
    return view


def list_snapshots(ctx: Context, tenant_id: str, uuid: str, *, page: int, pagelen: int) -> tuple[list[dict], int]:
    """A repository's snapshots, newest first."""
    with ctx.db.session() as s:
        repo = get_repository(s, tenant_id, uuid)
        cond = Snapshot.repository_id == repo.id
        total = s.scalar(select(func.count()).select_from(Snapshot).where(cond))
        rows = s.scalars(select(Snapshot).where(cond).order_by(Snapshot.taken_at.desc(), Snapshot.id.desc())
                         .offset((page - 1) * pagelen).limit(pagelen)).all()
        return [snapshot_view(r, with_changes=True) for r in rows], total


def find_snapshot(ctx: Context, tenant_id: str, workspace_slug: str, repo_slug: str,
                  snapshot_id: str | None) -> tuple[Repository, dict | None]:
    """Resolve a clone path to a repository (live state) or one of its snapshots."""
    with ctx.db.session() as s:
        repos = s.scalars(select(Repository).where(Repository.tenant_id == tenant_id, Repository.slug == repo_slug)
                          .order_by(Repository.deleted_upstream, Repository.created_at.desc())).all()
        if not repos:
            raise NotFound("no such repository")
        repo = repos[0]
        s.expunge(repo)
        if snapshot_id is None:
            return repo, None
        snap = s.get(Snapshot, snapshot_id)
        if snap is None or snap.repository_id != repo.id:
            raise NotFound("no such snapshot")
        return repo, json.loads(snap.refs_json)
