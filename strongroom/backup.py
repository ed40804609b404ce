"""The backup use cases: request, run and record incremental syncs; plan backup jobs."""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import select, true, update

from .bindings import credential_refused
from .context import Context
from .errors import (CredentialRejected, NotFound, PermanentError, RepositoryGone, StrongroomError,
                     TransientError)
from .jobs import add_items, complete_items, fail_items
from .ports import Dispatcher
from .repositories import (info_from_rest, manifest_for, mark_deleted_upstream, record_settings,
                           settings_from_rest, upsert_repository)
from .scope import in_scope_clause, should_sync
from .store.models import Installation, Job, Repository, Snapshot, Tenant, new_id, utcnow
from .vault.git import GitCredentials
from .vault.mirror import SnapshotEntry

log = logging.getLogger(__name__)
TRIGGERS = ("push", "sweep", "manual", "install")


def request_sync(repo: Repository, trigger: str) -> None:
    """Ask for a sync of ``repo`` covering everything up to now (coalesces with pending requests)."""
    repo.requested_gen = (repo.requested_gen or 0) + 1
    if repo.pending_trigger not in ("manual", "install") or trigger in ("manual", "install"):
        repo.pending_trigger = trigger


def active_installation(s, tenant_id: str) -> Installation | None:
    """The tenant's active binding (the newest one if several)."""
    return s.scalars(select(Installation).where(Installation.tenant_id == tenant_id,
                                                Installation.status == "active")
                     .order_by(Installation.installed_at.desc())).first()


def latest_snapshot(s, repository_id: str) -> Snapshot | None:
    return s.scalars(select(Snapshot).where(Snapshot.repository_id == repository_id)
                     .order_by(Snapshot.taken_at.desc(), Snapshot.id.desc()).limit(1)).first()


@dataclass(frozen=True)
class _Plan:
    repository_id: str
    generation: int
    trigger: str
    installation: Installation
    mirror_path: str
    clone_url: str | None
    full_name: str
    manifest: dict
    last_refs: dict | None


def sync_repository(ctx: Context, repository_id: str) -> str:
    """Bring one repository's backup up to date; returns synced|unchanged|busy|skipped.

    One writer per repository: if another sync holds the lock, the pending request is left for it
    (it re-checks after each round and after releasing), so bursts of pushes coalesce.
    """
    outcome = "busy"
    while True:
        lock = ctx.locks.acquire(f"repo:{repository_id}")
        if lock is None:
            return outcome
        try:
            with keep_lease(lock, ctx.settings.lock_lease_seconds):
                outcome = _sync_rounds(ctx, repository_id, lock)
        finally:
            lock.release()
        with ctx.db.session() as s:
            repo = s.get(Repository, repository_id)
            if repo is None or repo.requested_gen <= repo.synced_gen:
                return outcome


@contextmanager
def keep_lease(lock, lease_seconds: float) -> Iterator[None]:
    """Renew a leased lock in the background while the holder works (a dead holder's lease lapses)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(max(lease_seconds / 3, 0.5)):
            try:
                lock.extend()
            except StrongroomError:
                log.warning("lost the lease on %s", getattr(lock, "key", "?"))
                return

    thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _sync_rounds(ctx: Context, repository_id: str, lock) -> str:
    outcome = "unchanged"
    while True:
        plan = _plan_round(ctx, repository_id)
        if plan is None:
            return "skipped" if outcome == "unchanged" else outcome
        lock.extend()
        try:
            changed = _run_round(ctx, plan)
        except PermanentError as exc:
            _record_failure(ctx, plan, exc, permanent=True)
            return "failed"
        except TransientError as exc:
            _record_failure(ctx, plan, exc, permanent=False)
            raise
        outcome = "synced" if changed or outcome == "synced" else outcome


def _plan_round(ctx: Context, repository_id: str) -> _Plan | None:
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        if repo is None or repo.requested_gen <= repo.synced_gen:
            return None
        tenant = s.get(Tenant, repo.tenant_id)
        inst = active_installation(s, tenant.id)
        reason = None if should_sync(tenant, repo) else "not in scope or deleted upstream"
        if reason is None and inst is None:
            reason = "the installation is not active"
        if reason is not None:
            fail_items(s, repo.id, repo.requested_gen, reason)
            repo.synced_gen = repo.requested_gen
            return None
        last = latest_snapshot(s, repo.id)
        repo.state, repo.last_attempt_at = "syncing", utcnow()
        s.expunge(inst)
        return _Plan(repo.id, repo.requested_gen, repo.pending_trigger or "sweep", inst,
                     repo.vault_path, repo.clone_url, repo.full_name, manifest_for(tenant, repo),
                     json.loads(last.refs_json) if last else None)


def _run_round(ctx: Context, plan: _Plan) -> bool:
    host = ctx.host_for(plan.installation)
    user, password = host.git_credentials()
    creds = GitCredentials(user, password)
    url, manifest = (plan.clone_url, plan.manifest) if plan.clone_url else _discover_clone_url(ctx, plan, host)
    mirror = ctx.vault.open(ctx.vault.root / plan.mirror_path)
    mirror.write_manifest(manifest)
    if plan.trigger == "sweep" and plan.last_refs is not None:
        if mirror.ls_remote(url, creds) == plan.last_refs:  # a sweep that finds nothing new costs no fetch
            _record_success(ctx, plan, None, mirror.size_bytes())
            return False
    result = mirror.sync(url, creds)
    if result.changed:  # a cheap check that everything the new tips add is present
        mirror.check_new_history(result.after.values(), result.before.values())
    entry = None
    if plan.last_refs is None or result.after != plan.last_refs:
        entry = SnapshotEntry(id=new_id("s"), taken_at=utcnow(), trigger=plan.trigger,
                              refs=dict(result.after), changes=_changes(plan.last_refs or {}, result.after))
        mirror.record_snapshot(entry)  # durable on disk before the database says it exists
    _record_success(ctx, plan, entry, mirror.size_bytes())
    return entry is not None


def _discover_clone_url(ctx: Context, plan: _Plan, host) -> tuple[str, dict]:
    """Clone URLs come from the repository's links.clone; remember the answer and the settings the same
    answer shows (a repository created after install has them before any sweep). Returns the URL and
    the vault manifest with those settings."""
    workspace = plan.manifest["workspace"]["uuid"]
    repository = host.get_repository(workspace, plan.manifest["repository"]["uuid"])
    url = host.clone_url(repository)
    with ctx.db.session() as s:
        row = s.get(Repository, plan.repository_id)
        row.clone_url = url
        record_settings(row, settings_from_rest(repository))
        return url, manifest_for(s.get(Tenant, row.tenant_id), row)


def _changes(before: dict, after: dict) -> dict:
    names = set(before) | set(after)
    return {n: [before.get(n), after.get(n)] for n in sorted(names) if before.get(n) != after.get(n)}


def _record_success(ctx: Context, plan: _Plan, entry: SnapshotEntry | None, size: int) -> None:
    with ctx.db.session() as s:
        repo = s.get(Repository, plan.repository_id)
        if entry is not None:
            s.add(Snapshot(id=entry.id, repository_id=repo.id, taken_at=entry.taken_at, trigger=entry.trigger,
                           refs_json=json.dumps(entry.refs, sort_keys=True),
                           changes_json=json.dumps(entry.changes, sort_keys=True)))
            repo.snapshot_count = (repo.snapshot_count or 0) + 1
        repo.synced_gen = max(repo.synced_gen, plan.generation)
        if repo.requested_gen <= repo.synced_gen:
            repo.pending_trigger = None
        repo.state, repo.last_error, repo.last_error_code = "ok", None, None
        repo.last_backup_at, repo.size_bytes = utcnow(), size
        complete_items(s, repo.id, plan.generation)


def _record_failure(ctx: Context, plan: _Plan, exc: StrongroomError, *, permanent: bool) -> None:
    message = _describe(exc)
    with ctx.db.session() as s:
        if isinstance(exc, CredentialRejected):  # the binding's state says why (token expired, Forge gone)
            message = credential_refused(s, ctx.settings, plan.installation.id) or message
        repo = s.get(Repository, plan.repository_id)
        repo.state, repo.last_error, repo.last_error_code = "failing", message, exc.code
        if permanent:
            if isinstance(exc, RepositoryGone) and _gone_upstream(ctx, plan):
                mark_deleted_upstream(repo)
            repo.synced_gen = max(repo.synced_gen, plan.generation)
            fail_items(s, repo.id, plan.generation, message)
    log.warning("sync of %s failed (%s): %s", plan.full_name, exc.code, message)


def _describe(exc: StrongroomError) -> str:
    if isinstance(exc, CredentialRejected):
        return "Bitbucket refused Strongroom's credentials (access revoked or app uninstalled)"
    if isinstance(exc, RepositoryGone):
        return "the repository is gone on Bitbucket or no longer visible to Strongroom"
    return str(exc) or exc.code


def _gone_upstream(ctx: Context, plan: _Plan) -> bool:
    try:
        ctx.host_for(plan.installation).get_repository(plan.manifest["workspace"]["uuid"],
                                                       plan.manifest["repository"]["uuid"])
    except (NotFound, RepositoryGone):
        return True
    except StrongroomError:
        return False
    return False


def inventory(ctx: Context, tenant_id: str) -> None:
    """List the workspace's repositories on the host: add new ones, flag deleted ones, update names."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        inst = active_installation(s, tenant_id)
        if inst is None:
            raise CredentialRejected("the installation is not active")
        s.expunge(inst)
        workspace = tenant.workspace_uuid
    try:
        host = ctx.host_for(inst)
        listed = [info_from_rest(r) for r in host.iter_repositories(workspace)]
    except CredentialRejected:
        with ctx.db.session() as s:
            credential_refused(s, ctx.settings, inst.id)
        raise
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        for info in listed:
            repo, _ = upsert_repository(ctx, s, tenant, info)
            repo.deleted_upstream, repo.deleted_at = False, None
        seen = {i.uuid for i in listed}
        missing = [r.uuid for r in s.scalars(select(Repository).where(
            Repository.tenant_id == tenant_id, Repository.deleted_upstream.is_(False),
            Repository.uuid.not_in(seen) if seen else true()))]
        tenant.last_sweep_at = utcnow()
    gone = [uuid for uuid in missing if _confirmed_gone(host, workspace, uuid)]
    with ctx.db.session() as s:
        for repo in s.scalars(select(Repository).where(Repository.tenant_id == tenant_id,
                                                       Repository.uuid.in_(gone))):
            mark_deleted_upstream(repo)


def _confirmed_gone(host, workspace: str, uuid: str) -> bool:
    """Absent from the listing is not enough: only a 404 for the repository itself flags it deleted."""
    try:
        host.get_repository(workspace, uuid)
    except (NotFound, RepositoryGone):
        return True
    except StrongroomError:
        return False
    return False


def run_backup_job(ctx: Context, job_id: str, dispatcher: Dispatcher) -> int:
    """Plan a whole-workspace backup: inventory, then request a sync of every in-scope repository."""
    with ctx.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.started_at is not None:
            return 0  # already planned (idempotent on redelivery)
        tenant_id, trigger = job.tenant_id, job.trigger
    try:
        inventory(ctx, tenant_id)
    except PermanentError as exc:
        with ctx.db.session() as s:
            s.get(Job, job_id).error = _describe(exc)
        return 0
    with ctx.db.session() as s:
        # Claim the job: a redelivered copy planning it at the same time gets no row and adds nothing.
        claimed = s.execute(update(Job).where(Job.id == job_id, Job.started_at.is_(None))
                            .values(started_at=utcnow())).rowcount
        if not claimed:
            return 0
        job, tenant = s.get(Job, job_id), s.get(Tenant, tenant_id)
        repos = s.scalars(select(Repository).where(Repository.tenant_id == tenant_id,
                                                   Repository.deleted_upstream.is_(False),
                                                   in_scope_clause(tenant.scope_mode))).all()
        for repo in repos:
            request_sync(repo, trigger)
        add_items(s, job, repos)
        ids = [r.id for r in repos]
    for rid in ids:
        dispatcher.sync_repository(rid)
    return len(ids)
