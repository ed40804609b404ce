"""Periodic duties: re-dispatch work a broker outage or a crash left behind, import offline exports into the
audit log, and plan sweeps."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from .audit import import_offline_exports_quietly
from .context import Context
from .events import pending_event_ids
from .jobs import create_job
from .ports import Dispatcher
from .store.models import Installation, Job, Repository, utcnow

EVENT_GRACE_SECONDS = 10
JOB_GRACE_SECONDS = 30


def redispatch_stale_work(ctx: Context, dispatcher: Dispatcher) -> dict:
    """Events not applied, jobs not planned and syncs requested but not started, after a grace period; then
    offline exports recorded in the data directory are imported into the audit log."""
    now = utcnow()
    events = pending_event_ids(ctx, EVENT_GRACE_SECONDS)
    with ctx.db.session() as s:
        jobs = list(s.scalars(select(Job.id).where(Job.started_at.is_(None), Job.error.is_(None),
                                                   Job.created_at < now - timedelta(seconds=JOB_GRACE_SECONDS))))
        # After a lease has lapsed a dead holder's lock is free; a live holder just answers "busy".
        stale = now - timedelta(seconds=ctx.settings.lock_lease_seconds + JOB_GRACE_SECONDS)
        repos = list(s.scalars(select(Repository.id).where(
            Repository.requested_gen > Repository.synced_gen,
            (Repository.last_attempt_at.is_(None) & (Repository.created_at < stale))
            | (Repository.last_attempt_at < stale))))
    for event_id in events:
        dispatcher.process_event(event_id)
    for job_id in jobs:
        dispatcher.run_job(job_id)
    for repo_id in repos:
        dispatcher.sync_repository(repo_id)
    offline = import_offline_exports_quietly(ctx)  # after the dispatches, which it must never hold up
    return {"events": len(events), "jobs": len(jobs), "repositories": len(repos), "offline_exports": offline}


def plan_sweeps(ctx: Context, dispatcher: Dispatcher) -> list[str]:
    """One sweep job per tenant with an active installation."""
    with ctx.db.session() as s:
        tenant_ids = set(s.scalars(select(Installation.tenant_id).where(Installation.status == "active")))
        job_ids = [create_job(s, tid, kind="backup_all", trigger="sweep").id for tid in sorted(tenant_ids)]
    for job_id in job_ids:
        dispatcher.run_job(job_id)
    return job_ids
