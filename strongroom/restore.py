"""Restoring one repository from a snapshot: a plan first (exactly which refs go where), then the push.

Nothing on Bitbucket is ever deleted by a restore. By default refs come back under new names
(``restored/<date>/<name>``) so nothing is overwritten; putting a ref back to its snapshot value is the
explicit ``overwrite`` mode; a repository can also be recreated as a new repository. Every push carries
a lease per ref, so a ref that moved after the plan was shown is refused, never overwritten. A new
repository gets the original's recorded settings and its main branch first (see ``recreate``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from . import audit, recreate
from .backup import active_installation
from .context import Context
from .errors import Conflict, GitPermanentError, InvalidInput, RepositoryGone, Unprocessable
from .export import choose_snapshot_row, parse_time
from .host.client import HostClient
from .host.writes import check_slug, find_repository, write_client
from .jobs import create_job, view_job
from .ports import Dispatcher
from .repositories import stored_settings
from .store.models import Installation, JobItem, Repository, Tenant, utcnow
from .vault.git import GitCredentials
from .vault.push import RefUpdate, missing_objects, push_refs
from .vault.views import validate_ref_name
from .workspace import get_repository, iso

log = logging.getLogger(__name__)
MODES = ("new-names", "overwrite")
KINDS = ("same", "new")


@dataclass(frozen=True)
class RefAction:
    """One line of a plan: ``ref`` of the snapshot goes to ``target_ref``, moving it from ``old`` to ``new``."""

    ref: str
    action: str  # create | update | skip
    old: str | None
    new: str
    target_ref: str
    reason: str | None = None

    def as_dict(self) -> dict:
        """The API form (``from``/``to``; ``reason`` only on skips)."""
        view = {"ref": self.ref, "action": self.action, "from": self.old, "to": self.new, "target_ref": self.target_ref}
        return {**view, "reason": self.reason} if self.reason else view

    @classmethod
    def from_dict(cls, data: Mapping) -> "RefAction":
        """Read back a stored plan line."""
        return cls(data["ref"], data["action"], data.get("from"), data["to"], data["target_ref"], data.get("reason"))


def restored_name(ref: str, label: str) -> str:
    """``refs/heads/x`` -> ``refs/heads/restored/<label>/x`` (tags alike)."""
    kind, _, name = ref[len("refs/"):].partition("/")
    return validate_ref_name(f"refs/{kind}/restored/{label}/{name}")


def _clash(target: str, live: Mapping[str, str]) -> str | None:
    """A live ref that makes ``target`` impossible to create (``a`` blocks ``a/b`` and the reverse)."""
    parts = target.split("/")
    parents = {"/".join(parts[:i]) for i in range(3, len(parts))}
    return next((ref for ref in live if ref in parents or ref.startswith(target + "/")), None)


def _put_back(ref: str, oid: str, live: Mapping[str, str]) -> RefAction:
    current = live.get(ref)
    if current == oid:
        return RefAction(ref, "skip", current, oid, ref, "already at the snapshot's value")
    clash = _clash(ref, live) if current is None else None
    if clash:
        return RefAction(ref, "skip", None, oid, ref, f"{clash} exists on Bitbucket and blocks this name")
    return RefAction(ref, "create" if current is None else "update", current, oid, ref)


def _under_new_name(ref: str, oid: str, live: Mapping[str, str], labels: tuple[str, ...]) -> RefAction:
    if live.get(ref) == oid:
        return RefAction(ref, "skip", oid, oid, ref, "unchanged since the snapshot")
    target = ref
    for label in labels:
        target = restored_name(ref, label)
        current = live.get(target)
        if current == oid:
            return RefAction(ref, "skip", current, oid, target, "already restored under this name")
        if current is None and not _clash(target, live):
            return RefAction(ref, "create", None, oid, target)
    return RefAction(ref, "skip", live.get(target), oid, target, "every restore name for this ref is taken")


def plan_refs(snapshot: Mapping[str, str], live: Mapping[str, str], *, kind: str, mode: str,
              labels: tuple[str, ...]) -> list[RefAction]:
    """What happens to each snapshot ref, given the target's live refs (pure: no I/O)."""
    if kind == "new" or mode == "overwrite":
        return [_put_back(ref, oid, live) for ref, oid in sorted(snapshot.items())]
    return [_under_new_name(ref, oid, live, labels) for ref, oid in sorted(snapshot.items())]


@dataclass(frozen=True)
class RestoreRequest:
    """A validated restore request (the API body)."""

    snapshot_id: str | None = None
    at: datetime | None = None
    refs: tuple[str, ...] | None = None
    kind: str = "same"
    name: str | None = None
    mode: str = "new-names"
    dry_run: bool = True


def parse_request(body: Mapping) -> RestoreRequest:
    """Validate the body of ``POST /repositories/{uuid}/restores``; InvalidInput says what is wrong."""
    snapshot_id, at = body.get("snapshot_id"), body.get("at")
    if (snapshot_id is None) == (at is None):
        raise InvalidInput("give exactly one of snapshot_id and at")
    if snapshot_id is not None and (not isinstance(snapshot_id, str) or not snapshot_id):
        raise InvalidInput("snapshot_id must be a string")
    refs = body.get("refs")
    if refs is not None and (not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs)):
        raise InvalidInput("refs must be a non-empty list of full ref names")
    target = body.get("target", {"kind": "same"})
    if not isinstance(target, dict) or target.get("kind", "same") not in KINDS:
        raise InvalidInput("target must be {\"kind\": \"same\"} or {\"kind\": \"new\", \"name\": ...}")
    kind, name = target.get("kind", "same"), target.get("name")
    if name is not None and kind != "new":
        raise InvalidInput("a name is only for target kind \"new\"")
    mode, dry_run = body.get("mode", "new-names"), body.get("dry_run", True)
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run must be true or false")
    return RestoreRequest(snapshot_id, parse_time(at) if at is not None else None,
                          tuple(dict.fromkeys(refs)) if refs else None, kind,
                          check_slug(name) if name is not None else None, mode, dry_run)


@dataclass(frozen=True)
class Source:
    """What a restore reads: the repository, its snapshot, the tenant's binding and the vault path."""

    tenant_id: str
    workspace: dict
    repository_id: str
    repository: dict
    deleted: bool
    clone_url: str | None
    mirror_path: Path
    snapshot: dict
    refs: dict
    settings: dict | None  # the latest known settings (repositories.settings_from_rest), None if never seen
    installation: Installation = field(repr=False)


def load_source(ctx: Context, s, tenant: Tenant, repo: Repository, snap) -> Source:
    """The pieces of a restore, read in one session (the installation must be active)."""
    inst = active_installation(s, tenant.id)
    if inst is None:
        raise Conflict("the installation is not active: restoring to Bitbucket needs it (a bundle does not)")
    s.expunge(inst)
    return Source(tenant.id, {"uuid": tenant.workspace_uuid, "slug": tenant.workspace_slug}, repo.id,
                  {"uuid": repo.uuid, "slug": repo.slug, "full_name": repo.full_name}, repo.deleted_upstream,
                  repo.clone_url, ctx.vault.root / repo.vault_path,
                  {"id": snap.id, "taken_at": iso(snap.taken_at)}, json.loads(snap.refs_json),
                  stored_settings(repo), inst)


def _chosen(refs: dict, wanted: tuple[str, ...] | None, snapshot_id: str) -> dict:
    if wanted is None:
        return refs
    missing = [ref for ref in wanted if ref not in refs]
    if missing:
        raise Unprocessable(f"not in snapshot {snapshot_id}: {', '.join(missing)}")
    return {ref: refs[ref] for ref in wanted}


def live_refs(ctx: Context, host: HostClient, src: Source, creds: GitCredentials | None = None) -> dict[str, str]:
    """The host's current heads and tags of the source repository (``git ls-remote``, exact tag objects)."""
    creds = creds or GitCredentials(*host.git_credentials())
    try:
        return ctx.vault.open(src.mirror_path).ls_remote(_clone_url(host, src), creds)
    except RepositoryGone as exc:
        raise Conflict(f"{src.repository['full_name']} is gone on Bitbucket; restore it to a new repository") from exc


def plan_for(ctx: Context, host: HostClient, src: Source, refs: dict, *, kind: str, mode: str,
             name: str | None, live: Mapping[str, str] | None = None,
             projects: Callable[[str], bool | None] | None = None) -> dict:
    """The plan for one repository, as the API shows it and as the job stores it (for a new repository
    also the ``settings`` it gets and ``warnings`` about what cannot come back)."""
    extra: dict = {}
    if kind == "new":
        name = check_slug(name or src.repository["slug"])
        if live is None and find_repository(host, src.workspace["uuid"], name) is not None:
            raise Conflict(f"a repository named {name} already exists in the workspace; choose another name")
        live = {}
        known = src.settings if src.deleted else \
            recreate.current_settings(host, src.workspace["uuid"], src.repository["uuid"], src.settings)
        settings, warnings = recreate.plan_settings(
            known, refs, projects or recreate.ProjectCheck(host, src.workspace["uuid"]))
        extra = {"settings": settings, "warnings": warnings}
    else:
        if src.deleted:
            raise Conflict("the repository was deleted on Bitbucket; restore it to a new repository")
        name = src.repository["slug"]
        live = live_refs(ctx, host, src) if live is None else live
    labels = (src.snapshot["taken_at"][:10], src.snapshot["id"])
    actions = plan_refs(refs, live, kind=kind, mode=mode, labels=labels)
    return {"repository": src.repository, "snapshot": src.snapshot, "mode": mode if kind == "same" else None,
            "target": {"kind": kind, "name": name, "full_name": f"{src.workspace['slug']}/{name}"},
            **extra, "plan": [a.as_dict() for a in actions]}


def request_restore(ctx: Context, tenant_id: str, uuid: str, body: Mapping, *, actor: str,
                    dispatcher: Dispatcher) -> dict:
    """Plan a restore; unless it is a dry run, start it as a job (``job`` in the answer)."""
    req = parse_request(body)
    with ctx.db.session() as s:
        repo = get_repository(s, tenant_id, uuid)
        snap = choose_snapshot_row(s, repo.id, req.snapshot_id, req.at)
        src = load_source(ctx, s, s.get(Tenant, tenant_id), repo, snap)
    refs = _chosen(src.refs, req.refs, src.snapshot["id"])
    plan = plan_for(ctx, ctx.host_for(src.installation), src, refs, kind=req.kind, mode=req.mode, name=req.name)
    if req.dry_run:
        return {**plan, "dry_run": True}
    with ctx.db.session() as s:
        job = create_job(s, tenant_id, kind="restore", trigger="manual", params=plan)
        job.started_at = utcnow()  # self-tracked: the backup janitor re-plans only jobs never started
        s.add(JobItem(job_id=job.id, repository_id=src.repository_id, requested_gen=0, state="pending"))
        audit.record(s, tenant_id, actor, "restore", src.repository["full_name"],
                     {"job": job.id, "snapshot": src.snapshot["id"], "target": plan["target"], "mode": req.mode,
                      "refs": {a["target_ref"]: a["action"] for a in plan["plan"] if a["action"] != "skip"}})
        job_id = job.id
    dispatch(dispatcher.restore_repository, job_id)
    with ctx.db.session() as s:
        return {**plan, "dry_run": False, "job": view_job(s, tenant_id, job_id).as_dict()}


def dispatch(send, job_id: str) -> None:
    """Enqueue after commit; a broker outage only delays the job (the restore janitor starts it later)."""
    try:
        send(job_id)
    except Exception:  # noqa: BLE001 - any broker failure; the job row is already committed
        log.exception("could not enqueue job %s; the restore janitor will start it", job_id)


def execute(ctx: Context, tenant_id: str, repository_id: str, plan: Mapping) -> list[str]:
    """Carry out a stored plan for one repository; safe to run again after a crash (done refs are skipped).
    Returns warnings for the job item (settings that did not come back)."""
    changes = [a for a in map(RefAction.from_dict, plan["plan"]) if a.action != "skip"]
    with ctx.db.session() as s:
        repo = s.get(Repository, repository_id)
        snap = choose_snapshot_row(s, repo.id, plan["snapshot"]["id"], None)
        src = load_source(ctx, s, s.get(Tenant, tenant_id), repo, snap)
    mirror = ctx.vault.open(src.mirror_path)
    damage = missing_objects(mirror.path, [a.new for a in changes])
    if damage:  # checked before anything happens on Bitbucket
        raise GitPermanentError(f"the backup of {src.repository['full_name']} is damaged ({damage}); "
                                "nothing was changed on Bitbucket")
    host = ctx.host_for(src.installation)
    creds = GitCredentials(*write_client(host).git_credentials())
    target, settings = plan["target"], plan.get("settings")  # plans made before settings existed have none
    new = target["kind"] == "new"
    if new:
        url = recreate.ensure_repository(host, src.workspace["uuid"], target["name"], settings or {},
                                         {a.target_ref: a.new for a in changes},
                                         lambda clone_url: mirror.ls_remote(clone_url, creds))
    else:
        url = _clone_url(host, src)
    updates = _remaining(changes, mirror.ls_remote(url, creds))
    for batch in recreate.push_batches(updates, (settings or {}).get("mainbranch") if new else None):
        push_refs(mirror.path, url, creds, batch, timeout=ctx.settings.git_timeout_seconds)
    _verify(changes, mirror.ls_remote(url, creds), target)
    if not new or settings is None:
        return []
    return list(plan.get("warnings") or []) + recreate.check_result(host, src.workspace["uuid"], target["name"],
                                                                    settings)


def _clone_url(host: HostClient, src: Source) -> str:
    """The source repository's https clone URL (links.clone from the host when not known yet)."""
    return src.clone_url or host.clone_url(host.get_repository(src.workspace["uuid"], src.repository["uuid"]))


def _remaining(changes: list[RefAction], live: Mapping[str, str]) -> list[RefUpdate]:
    """The updates still to push: refs already at their value are done; a ref that moved is a conflict."""
    updates = []
    for action in changes:
        current = live.get(action.target_ref)
        if current == action.new:
            continue
        if current != action.old:
            raise Conflict(f"{action.target_ref} changed on Bitbucket after the plan was made (now "
                           f"{current or 'absent'}); nothing was changed, make a new plan")
        updates.append(RefUpdate(action.target_ref, action.new, action.old))
    return updates


def _verify(changes: list[RefAction], after: Mapping[str, str], target: Mapping) -> None:
    """Compare the target's refs with the plan (for a new repository: exactly the planned refs)."""
    wrong = [a.target_ref for a in changes if after.get(a.target_ref) != a.new]
    if target["kind"] == "new":
        wrong += sorted(set(after) - {a.target_ref for a in changes})
    if wrong:
        raise GitPermanentError(f"after the push {target['full_name']} differs from the snapshot on: "
                                f"{', '.join(wrong)}")
