"""Jobs: pollable units of work whose progress is derived from their per-repository items."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .errors import NotFound
from .store.models import Job, JobItem, Repository

# Jobs whose items track their own work (restores, recoveries, drills): a sync of the same repository
# never completes or fails them, and their items pass through "running". Their ``requested_gen`` counts
# attempts instead of naming a sync generation.
SELF_TRACKED_KINDS = ("restore", "recovery", "drill")
_SELF_TRACKED = select(Job.id).where(Job.kind.in_(SELF_TRACKED_KINDS))


@dataclass(frozen=True)
class JobView:
    id: str
    kind: str
    state: str
    done: int
    total: int
    error: str | None
    items: tuple[dict, ...] | None = None

    def as_dict(self) -> dict:
        view = {"id": self.id, "kind": self.kind, "state": self.state,
                "progress": {"done": self.done, "total": self.total}, "error": self.error}
        if self.items is not None:
            view["items"] = list(self.items)
        return view


def create_job(s: Session, tenant_id: str, *, kind: str, trigger: str, params: dict | None = None) -> Job:
    """Create a queued job (its items are added when the work is planned)."""
    job = Job(tenant_id=tenant_id, kind=kind, trigger=trigger, params_json=json.dumps(params or {}))
    s.add(job)
    s.flush()
    return job


def add_items(s: Session, job: Job, repos: Iterable[Repository]) -> int:
    """Attach one item per repository, each waiting for the sync generation requested now."""
    count = 0
    for repo in repos:
        s.add(JobItem(job_id=job.id, repository_id=repo.id, requested_gen=repo.requested_gen))
        count += 1
    return count


def complete_items(s: Session, repository_id: str, generation: int) -> None:
    """Mark every pending item satisfied by a sync that reached ``generation``."""
    s.execute(update(JobItem).where(JobItem.repository_id == repository_id, JobItem.state == "pending",
                                    JobItem.requested_gen <= generation, JobItem.job_id.not_in(_SELF_TRACKED))
              .values(state="done"))


def fail_items(s: Session, repository_id: str, generation: int, error: str) -> None:
    """Mark pending items up to ``generation`` failed (a permanent error stopped the sync)."""
    s.execute(update(JobItem).where(JobItem.repository_id == repository_id, JobItem.state == "pending",
                                    JobItem.requested_gen <= generation, JobItem.job_id.not_in(_SELF_TRACKED))
              .values(state="failed", error=error))


def view_job(s: Session, tenant_id: str, job_id: str) -> JobView:
    """The job as the API shows it; a job of another tenant is not found."""
    job = s.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound("no such job")
    rows = dict(s.execute(select(JobItem.state, func.count()).where(JobItem.job_id == job_id)
                          .group_by(JobItem.state)).all())
    total = sum(rows.values())
    done = total - rows.get("pending", 0) - rows.get("running", 0)
    failed = rows.get("failed", 0)
    if job.error:
        state = "failed"
    elif job.started_at is None or (job.kind in SELF_TRACKED_KINDS and not _attempted(s, job_id)):
        state = "queued"
    elif done < total:
        state = "running"
    else:
        state = "failed" if failed else "succeeded"
    error = job.error or (f"{failed} of {total} repositories failed" if failed and done == total else None)
    items = tuple(item_views(s, job_id)) if job.kind in SELF_TRACKED_KINDS else None
    return JobView(job.id, job.kind, state, done, total, error, items)


def _attempted(s: Session, job_id: str) -> bool:
    """Whether any item of a self-tracked job was started or finished."""
    return bool(s.scalar(select(func.count()).select_from(JobItem).where(
        JobItem.job_id == job_id, (JobItem.requested_gen > 0) | (JobItem.state != "pending"))))


def item_views(s: Session, job_id: str) -> list[dict]:
    """Per-repository progress of a self-tracked job: state, attempts, the error of a failed item and the
    warnings of a finished one (e.g. a recreated repository's project that no longer exists)."""
    rows = s.execute(select(JobItem, Repository.uuid, Repository.slug).join(
        Repository, Repository.id == JobItem.repository_id).where(JobItem.job_id == job_id)
        .order_by(JobItem.id)).all()
    return [{"repository": {"uuid": uuid, "slug": slug}, "state": item.state, "attempts": item.requested_gen,
             "error": item.error, "warnings": json.loads(item.warnings_json) if item.warnings_json else []}
            for item, uuid, slug in rows]
