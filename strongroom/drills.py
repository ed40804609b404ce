"""Verification drills: prove, on a schedule and on demand, that a repository can be restored.

A drill restores a snapshot into a scratch bare repository in the data directory (objects copied, not
borrowed), runs a full ``git fsck`` on it, compares every ref with the snapshot, and compares the
newest snapshot's tips with Bitbucket's live refs (``git ls-remote``). The outcome is recorded on the
repository (``last_verified_at``, ``last_verify_ok``, ``last_verify_error``); the scratch copy is removed.
"""
from __future__ import annotations

import json
import secrets
import shutil
import time
from datetime import timedelta
from typing import Mapping

from sqlalchemy import select

from . import audit, restore
from .backup import active_installation, request_sync
from .context import Context
from .errors import Conflict, GitError, InvalidInput, PermanentError
from .export import choose_snapshot_row
from .jobs import create_job, view_job
from .ports import Dispatcher
from .store.models import Job, JobItem, Repository, Tenant, utcnow
from .vault.push import materialize, verify_copy
from .workspace import get_repository

SCRATCH_DIR = "drills"
SCRATCH_MAX_AGE_SECONDS = 3600


class DrillFailed(PermanentError):
    """A verification drill found a problem (the repository's ``last_verify_error`` says which)."""

    code = "drill_failed"


def drill_repository(ctx: Context, repository_id: str, dispatcher: Dispatcher, *,
                     snapshot_id: str | None = None) -> str:
    """Run one drill and record its outcome; DrillFailed when anything did not match."""
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        tenant = s.get(Tenant, repo.tenant_id)
        snap = choose_snapshot_row(s, repo.id, snapshot_id, None)
        latest = choose_snapshot_row(s, repo.id, None, None)
        compare = not repo.deleted_upstream and active_installation(s, tenant.id) is not None
        src = restore.load_source(ctx, s, tenant, repo, latest) if compare else None
        mirror_path, refs = ctx.vault.root / repo.vault_path, json.loads(snap.refs_json)
        behind_known = repo.requested_gen > repo.synced_gen
    problems = _freshness(ctx, src, behind_known) if src is not None else []
    problems += restore_into_scratch(ctx, mirror_path, refs)
    _record(ctx, repository_id, problems, dispatcher, resync=any(p.startswith("the newest") for p in problems))
    if problems:
        raise DrillFailed("; ".join(problems))
    return "ok"


def _freshness(ctx: Context, src: restore.Source, sync_pending: bool) -> list[str]:
    """The newest snapshot's tips against Bitbucket's live refs (a repository gone upstream is not compared)."""
    try:
        live = restore.live_refs(ctx, ctx.host_for(src.installation), src)
    except Conflict:
        return []
    differ = sorted(ref for ref in set(live) | set(src.refs) if live.get(ref) != src.refs.get(ref))
    if not differ:
        return []
    shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
    note = "a backup was already under way" if sync_pending else "a backup was requested"
    return [f"the newest snapshot differs from Bitbucket on {len(differ)} refs ({shown}); {note}"]


def restore_into_scratch(ctx: Context, mirror_path, refs: Mapping[str, str]) -> list[str]:
    """Restore ``refs`` into a scratch bare repository, check it, remove it; the problems found."""
    scratch = ctx.settings.data_dir / SCRATCH_DIR
    _clean_scratch(scratch)
    work = scratch / f".tmp-{secrets.token_hex(6)}"
    try:
        materialize(mirror_path, refs, work / "restore.git")
        return verify_copy(work / "restore.git", refs)
    except GitError as exc:
        last = (exc.stderr or str(exc)).strip().splitlines()
        return [f"the snapshot could not be restored into a scratch repository: {last[-1] if last else exc.code}"]
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a scratch copy, never backed-up data


def _clean_scratch(scratch) -> None:
    """Scratch copies a killed drill left behind (only our ``.tmp-*`` directories, after an hour)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for leftover in scratch.glob(".tmp-*"):
        if leftover.stat().st_mtime < time.time() - SCRATCH_MAX_AGE_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)


def _record(ctx: Context, repository_id: str, problems: list[str], dispatcher: Dispatcher, *, resync: bool) -> None:
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        repo.last_verified_at, repo.last_verify_ok = utcnow(), not problems
        repo.last_verify_error = "; ".join(problems) if problems else None
        if resync and repo.requested_gen <= repo.synced_gen:
            request_sync(repo, "sweep")
        else:
            resync = False
    if resync:
        restore.dispatch(dispatcher.sync_repository, repository_id)


def request_drill(ctx: Context, tenant_id: str, uuid: str, body: Mapping, *, actor: str,
                  dispatcher: Dispatcher) -> dict:
    """Start an on-demand drill of one repository (optionally of one snapshot) as a job."""
    snapshot_id = body.get("snapshot_id")
    if snapshot_id is not None and (not isinstance(snapshot_id, str) or not snapshot_id):
        raise InvalidInput("snapshot_id must be a string")
    with ctx.db.session() as s:
        repo = get_repository(s, tenant_id, uuid)
        snap = choose_snapshot_row(s, repo.id, snapshot_id, None)
        job = create_job(s, tenant_id, kind="drill", trigger="manual", params={"snapshot_id": snapshot_id})
        job.started_at = utcnow()  # self-tracked: the backup janitor re-plans only jobs never started
        s.add(JobItem(job_id=job.id, repository_id=repo.id, requested_gen=0))
        audit.record(s, tenant_id, actor, "drill", repo.full_name, {"job": job.id, "snapshot": snap.id})
        job_id = job.id
    restore.dispatch(dispatcher.verify_repository, job_id)
    with ctx.db.session() as s:
        return {"job": view_job(s, tenant_id, job_id).as_dict()}


def plan_drill_sweep(ctx: Context, dispatcher: Dispatcher) -> list[str]:
    """One drill job per tenant for repositories not proven restorable within the drill interval."""
    cutoff = utcnow() - timedelta(seconds=ctx.settings.drill_interval_seconds * 0.9)
    with ctx.db.session() as s:
        running = set(s.scalars(select(Job.tenant_id).join(JobItem, JobItem.job_id == Job.id).where(
            Job.kind == "drill", JobItem.state.in_(("pending", "running")))))
        due: dict[str, list[str]] = {}
        for repo in s.scalars(select(Repository).where(
                Repository.snapshot_count > 0,
                Repository.last_verified_at.is_(None) | (Repository.last_verified_at < cutoff))
                .order_by(Repository.last_verified_at, Repository.id)):
            if repo.tenant_id not in running:
                due.setdefault(repo.tenant_id, []).append(repo.id)
        jobs = []
        for tenant_id, repo_ids in sorted(due.items()):
            job = create_job(s, tenant_id, kind="drill", trigger="sweep", params={})
            job.started_at = utcnow()
            s.add_all(JobItem(job_id=job.id, repository_id=rid, requested_gen=0) for rid in repo_ids)
            jobs.append((job.id, min(len(repo_ids), ctx.settings.git_concurrency)))
    for job_id, lanes in jobs:
        for _ in range(max(1, lanes)):
            restore.dispatch(dispatcher.verify_repository, job_id)
    return [job_id for job_id, _ in jobs]

