"""'Is Bitbucket down?': can Strongroom reach a tenant's Bitbucket REST API and git endpoint right now.

The answer is checked by the server (the browser in an iframe cannot see the host's git endpoint)
and cached per tenant for CACHE_SECONDS, so a page polling it never hammers the host. A check that
has no answer within ANSWER_SECONDS is reported as unreachable while it carries on in the
background; its real outcome replaces that answer in the cache when it arrives.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import select

from .backup import active_installation
from .context import Context
from .errors import CredentialRejected, NotFound, StrongroomError, TransientError
from .store.models import Installation, Repository, Tenant
from .vault.git import GitCredentials
from .vault.mirror import Mirror

log = logging.getLogger(__name__)
CACHE_SECONDS = 30.0
ANSWER_SECONDS = 5.0
GIT_PROBE_TIMEOUT = 20.0

UP, DOWN, REFUSED, UNKNOWN = "up", "down", "refused", "unknown"


@dataclass(frozen=True)
class Probe:
    """One endpoint's reachability: up, down, refused (reachable, credentials refused) or unknown."""

    state: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class _Target:
    installation: Installation
    workspace_uuid: str
    mirror_path: str | None
    clone_url: str | None


def _target(ctx: Context, tenant_id: str) -> _Target | None:
    """The active installation and one backed-up repository to ls-remote (None when not connected)."""
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("no such tenant")
        inst = active_installation(s, tenant_id)
        if inst is None:
            return None
        repo = s.scalars(select(Repository).where(
            Repository.tenant_id == tenant_id, Repository.deleted_upstream.is_(False),
            Repository.clone_url.is_not(None), Repository.snapshot_count > 0)
            .order_by(Repository.last_backup_at.desc()).limit(1)).first()
        s.expunge(inst)
        return _Target(inst, tenant.workspace_uuid, repo.vault_path if repo else None,
                       repo.clone_url if repo else None)


def _classify(exc: StrongroomError) -> Probe:
    if isinstance(exc, CredentialRejected):
        return Probe(REFUSED, "Bitbucket answered but refused Strongroom's credentials")
    if isinstance(exc, TransientError):
        return Probe(DOWN, f"Bitbucket is not answering ({exc.code}: {exc.message})")
    return Probe(UNKNOWN, f"the check failed ({exc.code})")


def _probe_api(ctx: Context, target: _Target) -> Probe:
    try:
        ctx.host_for(target.installation).get_workspace(target.workspace_uuid)
    except StrongroomError as exc:
        return _classify(exc)
    return Probe(UP, "the REST API answered")


def _probe_git(ctx: Context, target: _Target) -> Probe:
    if not target.clone_url or not target.mirror_path:
        return Probe(UNKNOWN, "no repository has been backed up yet")
    try:
        user, password = ctx.host_for(target.installation).git_credentials()
        mirror = Mirror(ctx.vault.root / target.mirror_path, timeout=GIT_PROBE_TIMEOUT)
        mirror.ls_remote(target.clone_url, GitCredentials(user, password))
    except StrongroomError as exc:
        return _classify(exc)
    return Probe(UP, "git ls-remote answered")


def check_host(ctx: Context, tenant_id: str) -> dict:
    """Probe the tenant's REST API and git endpoint once, uncached."""
    target = _target(ctx, tenant_id)
    if target is None:
        api = git = Probe(UNKNOWN, "the workspace is not connected")
    else:
        api, git = _probe_api(ctx, target), _probe_git(ctx, target)
    return _report(api, git)


def _report(api: Probe, git: Probe) -> dict:
    states = {api.state, git.state}
    down = True if DOWN in states else (None if states <= {UNKNOWN} else False)
    return {"bitbucket_down": down, "api": api.as_dict(), "git": git.as_dict(),
            "checked_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}


def _no_answer() -> dict:
    probe = Probe(DOWN, f"Bitbucket gave no usable answer within {ANSWER_SECONDS:g} s")
    return _report(probe, probe)


@dataclass
class StatusBoard:
    """A per-process cache of host checks: one check in flight per tenant, answers kept briefly."""

    check: Callable[[Context, str], dict] = check_host
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict = field(default_factory=dict)
    _running: dict = field(default_factory=dict)

    def status(self, ctx: Context, tenant_id: str, *, max_age: float = CACHE_SECONDS,
               wait: float = ANSWER_SECONDS) -> dict:
        """The tenant's host status, from the cache when younger than ``max_age``."""
        with self._lock:
            cached = self._cache.get(tenant_id)
            if cached and self.clock() - cached[0] < max_age:
                return cached[1]
            done = self._running.get(tenant_id)
            if done is None:
                done = self._running[tenant_id] = threading.Event()
                threading.Thread(target=self._run, args=(ctx, tenant_id, done), daemon=True,
                                 name="host-status").start()
        if done.wait(wait):
            with self._lock:
                return self._cache[tenant_id][1]
        with self._lock:
            if done.is_set():
                return self._cache[tenant_id][1]
            answer = _no_answer()  # the real answer replaces this one when it comes
            self._cache[tenant_id] = (self.clock(), answer)
            return answer

    def _run(self, ctx: Context, tenant_id: str, done: threading.Event) -> None:
        try:
            answer = self.check(ctx, tenant_id)
        except Exception as exc:  # noqa: BLE001 - a broken check must not leave waiters hanging
            log.exception("host status check failed")
            answer = _report(Probe(UNKNOWN, f"the check failed ({type(exc).__name__})"),
                             Probe(UNKNOWN, "not checked"))
        with self._lock:
            self._cache[tenant_id] = (self.clock(), answer)
            self._running.pop(tenant_id, None)
        done.set()


_BOARD = StatusBoard()


def host_status(ctx: Context, tenant_id: str) -> dict:
    """Whether Strongroom can reach the tenant's Bitbucket now (cached ~30 s per tenant)."""
    return _BOARD.status(ctx, tenant_id)
