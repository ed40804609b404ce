"""Scheduled repository maintenance under the repository lock; it never prunes."""
from __future__ import annotations

import logging
import zlib
from datetime import timedelta

from sqlalchemy import select

from .backup import keep_lease
from .context import Context
from .errors import GitError
from .store.models import Repository, utcnow

log = logging.getLogger(__name__)
FSCK_ROTATION = 7  # each repository gets a full fsck about once every 7 maintenance rounds


def due_for_maintenance(ctx: Context) -> list[str]:
    """Repositories with a vault whose last maintenance is older than the interval."""
    cutoff = utcnow() - timedelta(seconds=ctx.settings.maintenance_interval_seconds * 0.9)
    with ctx.db.session() as s:
        return list(s.scalars(select(Repository.id).where(
            Repository.snapshot_count > 0,
            Repository.last_maintenance_at.is_(None) | (Repository.last_maintenance_at < cutoff))))


def maintain_repository(ctx: Context, repository_id: str, *, full_fsck: bool | None = None) -> str:
    """Pack refs, geometric repack, commit-graph; connectivity check; full fsck on a rotating subset."""
    lock = ctx.locks.acquire(f"repo:{repository_id}")
    if lock is None:
        return "busy"
    try:
        with keep_lease(lock, ctx.settings.lock_lease_seconds):
            return _maintain_locked(ctx, repository_id, full_fsck)
    finally:
        lock.release()


def _maintain_locked(ctx: Context, repository_id: str, full_fsck: bool | None) -> str:
    """Maintenance of one mirror; the caller holds its lock."""
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        path = ctx.vault.root / repo.vault_path
        rounds = int(utcnow().timestamp() // max(ctx.settings.maintenance_interval_seconds, 1))
    if not path.exists():
        return "skipped"
    if full_fsck is None:
        full_fsck = (zlib.crc32(repository_id.encode()) + rounds) % FSCK_ROTATION == 0
    mirror = ctx.vault.open(path)
    try:
        mirror.maintain()
        mirror.fsck() if full_fsck else mirror.check_connectivity()
    except GitError as exc:
        _record(ctx, repository_id, error=f"integrity check failed: {exc.stderr or exc}", fsck=full_fsck)
        return "failed"
    _record(ctx, repository_id, error=None, fsck=full_fsck, size=mirror.size_bytes())
    return "ok"


def _record(ctx: Context, repository_id: str, *, error: str | None, fsck: bool, size: int | None = None) -> None:
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        repo.last_maintenance_at = utcnow()
        if fsck:
            repo.last_fsck_at = utcnow()
        if size is not None:
            repo.size_bytes = size
        if error:
            repo.state, repo.last_error, repo.last_error_code = "failing", error, "integrity"
            log.error("repository %s: %s", repository_id, error)
