"""Workspace recovery, and the resumable runner behind restore, recovery and drill jobs.

A recovery plans every chosen repository at one point in time and runs as one job with an item per
repository. Items are claimed one at a time under a per-item lock by a "baton" task on the git queue:
at most ``git_concurrency`` batons per job run at once, each passes itself on when its item is done,
a failed repository is recorded and the others go on, a rate limit delays the baton by Retry-After,
and an item whose runner died (its lock is free while it says "running") is put back and resumed.
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Callable, Mapping

from sqlalchemy import select, update

from . import audit, drills, recreate, restore
from .backup import keep_lease
from .context import Context
from .errors import Conflict, InvalidInput, NotFound, RateLimited, StrongroomError, TransientError
from .export import choose_snapshot_row, parse_time
from .host.writes import existing_slugs
from .jobs import SELF_TRACKED_KINDS, create_job, view_job
from .ports import Dispatcher
from .store.models import Job, JobItem, Repository, Tenant, utcnow
from .workspace import get_repository

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
NEVER_STARTED_GRACE_SECONDS = 300
_SENDERS = {"restore": "restore_repository", "recovery": "run_recovery_item", "drill": "verify_repository"}


# --- planning -----------------------------------------------------------------------------------

def _chosen_repositories(s, tenant_id: str, which: object) -> list[Repository]:
    query = select(Repository).where(Repository.tenant_id == tenant_id, Repository.snapshot_count > 0)
    if which == "deleted":
        query = query.where(Repository.deleted_upstream.is_(True))
    elif isinstance(which, list) and which and all(isinstance(u, str) for u in which):
        return [get_repository(s, tenant_id, u) for u in dict.fromkeys(which)]
    elif which != "all":
        raise InvalidInput('repositories must be "deleted", "all" or a list of repository uuids')
    return list(s.scalars(query.order_by(Repository.slug, Repository.id)))


def _plan_one(ctx: Context, host, src: restore.Source, taken: set[str], mode: str,
              projects: recreate.ProjectCheck) -> dict:
    """One repository's part: recreate it if it is gone, else restore into it (``mode``)."""
    if src.deleted:
        if src.repository["slug"] in taken:
            raise Conflict(f"a repository named {src.repository['slug']} exists on Bitbucket")
        taken.add(src.repository["slug"])
        return restore.plan_for(ctx, host, src, src.refs, kind="new", mode=mode, name=None, live={},
                                projects=projects)
    return restore.plan_for(ctx, host, src, src.refs, kind="same", mode=mode, name=None)


def plan_recovery(ctx: Context, tenant_id: str, which: object, at, mode: str) -> list[dict]:
    """Per repository: the restore plan at ``at`` (``action`` restore), or why it is skipped."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        sources = []
        for repo in _chosen_repositories(s, tenant_id, which):
            try:
                sources.append(restore.load_source(ctx, s, tenant, repo, choose_snapshot_row(s, repo.id, None, at)))
            except NotFound as exc:
                sources.append({"repository": {"uuid": repo.uuid, "slug": repo.slug, "full_name": repo.full_name},
                                "action": "skip", "reason": str(exc)})
    real = [src for src in sources if isinstance(src, restore.Source)]
    if not real:
        return [src for src in sources if isinstance(src, dict)]
    host = ctx.host_for(real[0].installation)
    taken = existing_slugs(host, real[0].workspace["uuid"])  # one listing instead of a call per repository
    projects = recreate.ProjectCheck(host, real[0].workspace["uuid"])  # each project asked about once
    return [src if isinstance(src, dict) else _planned(ctx, host, src, taken, mode, projects) for src in sources]


def _planned(ctx: Context, host, src: restore.Source, taken: set[str], mode: str,
             projects: recreate.ProjectCheck) -> dict:
    try:
        plan = _plan_one(ctx, host, src, taken, mode, projects)
    except (Conflict, NotFound) as exc:
        return {"repository": src.repository, "snapshot": src.snapshot, "action": "skip", "reason": str(exc),
                "repository_id": src.repository_id}
    busy = plan["target"]["kind"] == "new" or any(a["action"] != "skip" for a in plan["plan"])
    reason = None if busy else "Bitbucket already holds every ref of the snapshot"
    return {**plan, "action": "restore" if busy else "skip", "repository_id": src.repository_id,
            **({"reason": reason} if reason else {})}


def request_recovery(ctx: Context, tenant_id: str, body: Mapping, *, actor: str, dispatcher: Dispatcher) -> dict:
    """Plan a recovery; unless it is a dry run, start it as one job with an item per repository."""
    which, dry_run, mode = body.get("repositories", "deleted"), body.get("dry_run", True), body.get("mode", "new-names")
    if not isinstance(dry_run, bool) or mode not in restore.MODES:
        raise InvalidInput("dry_run must be true or false, mode one of " + ", ".join(restore.MODES))
    at = parse_time(body["at"]) if body.get("at") is not None else None
    entries = plan_recovery(ctx, tenant_id, which, at, mode)
    public = [{k: v for k, v in e.items() if k != "repository_id"} for e in entries]
    answer = {"at": body.get("at"), "plan": public, "dry_run": dry_run}
    if dry_run:
        return answer
    chosen = [e for e in entries if e["action"] == "restore"]
    with ctx.db.session() as s:
        job = create_job(s, tenant_id, kind="recovery", trigger="manual",
                         params={"at": body.get("at"), "items": {e["repository_id"]: e for e in chosen}})
        job.started_at = utcnow()  # self-tracked: the backup janitor re-plans only jobs never started
        s.add_all(JobItem(job_id=job.id, repository_id=e["repository_id"], requested_gen=0) for e in chosen)
        audit.record(s, tenant_id, actor, "recovery", s.get(Tenant, tenant_id).workspace_slug,
                     {"job": job.id, "at": body.get("at"), "repositories": [e["target"]["full_name"] for e in chosen]})
        job_id = job.id
    kick(ctx, job_id, dispatcher, lanes=ctx.settings.git_concurrency)
    with ctx.db.session() as s:
        return {**answer, "job": view_job(s, tenant_id, job_id).as_dict()}


# --- running items ----------------------------------------------------------------------------

def kick(ctx: Context, job_id: str, dispatcher: Dispatcher, *, lanes: int = 1, delay: float = 0) -> None:
    """Send up to ``lanes`` batons for a self-tracked job (never more than it has unfinished items)."""
    with ctx.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.kind not in _SENDERS:
            return
        open_items = s.scalar(select(JobItem.id).where(JobItem.job_id == job_id, JobItem.state == "pending")
                              .limit(1))
        kind = job.kind
    if open_items is None:
        return
    send: Callable[..., None] = getattr(dispatcher, _SENDERS[kind])
    for _ in range(max(1, lanes)):
        restore.dispatch(lambda jid: send(jid, delay), job_id)


def run_next_item(ctx: Context, job_id: str, dispatcher: Dispatcher) -> str:
    """Claim one pending item of the job, run it, record the outcome, then pass the baton on."""
    claimed = _claim(ctx, job_id)
    if claimed is None:
        return "idle"
    item_id, lock = claimed
    try:
        with keep_lease(lock, ctx.settings.lock_lease_seconds):
            outcome, delay = _run(ctx, job_id, item_id, dispatcher)
    finally:
        lock.release()
    kick(ctx, job_id, dispatcher, delay=delay)
    return outcome


def _claim(ctx: Context, job_id: str):
    """Lock and mark running the first pending item nobody else holds (None when there is none)."""
    with ctx.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.kind not in SELF_TRACKED_KINDS:
            return None
        candidates = list(s.scalars(select(JobItem.id).where(JobItem.job_id == job_id, JobItem.state == "pending")
                                    .order_by(JobItem.id)))
    for item_id in candidates:
        lock = ctx.locks.acquire(f"job-item:{item_id}")
        if lock is None:
            continue
        with ctx.db.session() as s:
            won = s.execute(update(JobItem).where(JobItem.id == item_id, JobItem.state == "pending")
                            .values(state="running", requested_gen=JobItem.requested_gen + 1)).rowcount
        if won:
            return item_id, lock
        lock.release()
    return None


def _run(ctx: Context, job_id: str, item_id: int, dispatcher: Dispatcher) -> tuple[str, float]:
    """Run one claimed item; returns (its new state, seconds the next baton should wait)."""
    with ctx.db.session() as s:
        job, item = s.get(Job, job_id), s.get(JobItem, item_id)
        kind, tenant_id, attempts, repository_id = job.kind, job.tenant_id, item.requested_gen, item.repository_id
        params = json.loads(job.params_json or "{}")
    try:
        warnings = _execute(ctx, kind, tenant_id, repository_id, params, dispatcher)
    except RateLimited as exc:
        return _finish(ctx, item_id, "pending", f"waiting: {exc}"), exc.retry_after or 60.0
    except TransientError as exc:
        if attempts < MAX_ATTEMPTS:
            return _finish(ctx, item_id, "pending", f"attempt {attempts} failed: {exc}"), 5.0 * 2 ** attempts
        return _finish(ctx, item_id, "failed", f"gave up after {attempts} attempts: {exc}"), 0.0
    except StrongroomError as exc:
        return _finish(ctx, item_id, "failed", str(exc) or exc.code), 0.0
    except Exception as exc:  # noqa: BLE001 - one repository's failure never stops the others
        log.exception("job %s item %s failed", job_id, item_id)
        return _finish(ctx, item_id, "failed", f"internal error ({type(exc).__name__})"), 0.0
    return _finish(ctx, item_id, "done", None, warnings), 0.0


def _execute(ctx: Context, kind: str, tenant_id: str, repository_id: str, params: dict,
             dispatcher: Dispatcher) -> list[str] | None:
    """Run one item; returns its warnings (settings a recreated repository did not get back)."""
    if kind == "drill":
        drills.drill_repository(ctx, repository_id, dispatcher, snapshot_id=params.get("snapshot_id"))
        return None
    if kind == "restore":
        return restore.execute(ctx, tenant_id, repository_id, params)
    return restore.execute(ctx, tenant_id, repository_id, params["items"][repository_id])


def _finish(ctx: Context, item_id: int, state: str, error: str | None, warnings: list[str] | None = None) -> str:
    values: dict = {"state": state, "error": error}
    if warnings:
        values["warnings_json"] = json.dumps(list(warnings))
    with ctx.db.session() as s:
        s.execute(update(JobItem).where(JobItem.id == item_id).values(**values))
    return state


def resume_stalled(ctx: Context, dispatcher: Dispatcher, *, everything: bool = False) -> int:
    """Put back items whose runner died and restart jobs that never started; ``everything`` (on a worker
    start, when queued batons may have been lost) sends a baton to every unfinished job. Returns jobs kicked."""
    with ctx.db.session() as s:
        running = list(s.scalars(select(JobItem.id).join(Job, Job.id == JobItem.job_id).where(
            Job.kind.in_(SELF_TRACKED_KINDS), JobItem.state == "running")))
    to_kick = {job_id for job_id in map(lambda i: _reclaim(ctx, i), running) if job_id}
    cutoff = utcnow() - timedelta(seconds=NEVER_STARTED_GRACE_SECONDS)
    with ctx.db.session() as s:
        pending = select(Job.id).join(JobItem, JobItem.job_id == Job.id).where(
            Job.kind.in_(SELF_TRACKED_KINDS), JobItem.state == "pending").distinct()
        if not everything:
            pending = pending.where(Job.created_at < cutoff).where(~Job.id.in_(
                select(JobItem.job_id).where((JobItem.requested_gen > 0) | (JobItem.state != "pending"))))
        to_kick |= set(s.scalars(pending))
    for job_id in sorted(to_kick):
        kick(ctx, job_id, dispatcher)
    return len(to_kick)


def _reclaim(ctx: Context, item_id: int) -> str | None:
    """A running item whose lock is free lost its runner: make it pending again; returns its job id."""
    lock = ctx.locks.acquire(f"job-item:{item_id}")
    if lock is None:
        return None  # its runner is alive
    try:
        with ctx.db.session() as s:
            item = s.get(JobItem, item_id)
            if item is None or item.state != "running":
                return None
            item.state, item.error = "pending", "resumed after its worker stopped"
            return item.job_id
    finally:
        lock.release()
