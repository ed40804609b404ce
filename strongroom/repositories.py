"""Keeping our record of a tenant's repositories in step with the host (keyed by UUID).

Besides names, a repository's row keeps its latest known *settings*: what ``POST /2.0/repositories/
{workspace}/{slug}`` accepts and a restore can give back (description, privacy, project, language,
fork policy), plus the name of its main branch, which a restore reproduces by pushing that branch first.
They are not per snapshot: a repository has one set, refreshed whenever the host shows it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .connect.payloads import normalize_uuid
from .context import Context
from .errors import Forbidden
from .host.writes import FORK_POLICIES
from .store.models import Repository, Tenant, utcnow


@dataclass(frozen=True)
class RepoInfo:
    """What we learn about a repository from the REST API or an event."""

    uuid: str
    slug: str
    name: str = ""
    full_name: str = ""
    clone_url: str | None = None
    settings: Mapping = field(default_factory=dict)  # only what the source carried (see settings_from_rest)


# has_issues/has_wiki are left out on purpose: Bitbucket removed Issues and Wikis on 2026-08-20.
SETTING_KEYS = ("description", "is_private", "project", "language", "fork_policy", "mainbranch")


def info_from_rest(data: Mapping) -> RepoInfo:
    """Parse a REST 2.0 repository object."""
    full_name = data.get("full_name") or ""
    slug = data.get("slug") or (full_name.split("/", 1)[1] if "/" in full_name else data.get("name", ""))
    clone = next((link.get("href") for link in data.get("links", {}).get("clone", [])
                  if link.get("name") == "https"), None)
    return RepoInfo(uuid=normalize_uuid(data["uuid"]), slug=slug, name=data.get("name") or slug,
                    full_name=full_name, clone_url=clone, settings=settings_from_rest(data))


def settings_from_rest(data: Mapping) -> dict:
    """The restorable settings a repository object carries (REST 2.0, or the shorter webhook form).

    A field the object does not carry is left out, so a partial object never erases what a full one
    told us; ``mainbranch`` is None when the object says so (an empty repository has none).
    """
    found: dict = {}
    for key in ("description", "language"):
        if isinstance(data.get(key), str):
            found[key] = data[key]
    if isinstance(data.get("is_private"), bool):
        found["is_private"] = data["is_private"]
    if data.get("fork_policy") in FORK_POLICIES:
        found["fork_policy"] = data["fork_policy"]
    project = data.get("project")
    if isinstance(project, Mapping) and isinstance(project.get("key"), str) and project["key"]:
        name = project.get("name")
        found["project"] = {"key": project["key"], "name": name if isinstance(name, str) else ""}
    if "mainbranch" in data:
        branch = data["mainbranch"]
        name = branch.get("name") if isinstance(branch, Mapping) else None
        found["mainbranch"] = name if isinstance(name, str) and name else None
    return found


def settings_from_event(event_key: str, data: Mapping) -> dict:
    """The settings an event payload reveals: the repository object's, and for ``repo:updated`` the new
    values in ``changes`` (``{"description": {"old", "new"}, ...}``)."""
    repo = data.get("fork" if event_key == "repo:fork" else "repository")
    found = settings_from_rest(repo) if isinstance(repo, Mapping) else {}
    changes = data.get("changes") if event_key == "repo:updated" else None
    if isinstance(changes, Mapping):
        news = {key: change["new"] for key, change in changes.items()
                if key in SETTING_KEYS and isinstance(change, Mapping) and "new" in change}
        found.update(settings_from_rest(news))
    return found


def stored_settings(repo: Repository) -> dict | None:
    """The repository's latest known settings, or None if the host never showed them to us."""
    if not repo.settings_json:
        return None
    value = json.loads(repo.settings_json)
    return value if isinstance(value, dict) else None


def record_settings(repo: Repository, found: Mapping) -> bool:
    """Merge what the host just showed into the row; True if anything changed (only then is it written)."""
    if not found:
        return False
    current = stored_settings(repo) or {}
    merged = {**current, **{key: found[key] for key in SETTING_KEYS if key in found}}
    if repo.settings_json and merged == current:
        return False
    repo.settings_json = json.dumps(merged, sort_keys=True, separators=(",", ":"))
    repo.settings_recorded_at = utcnow()
    return True


def find_repository(s: Session, tenant_id: str, uuid: str) -> Repository | None:
    return s.scalars(select(Repository).where(Repository.tenant_id == tenant_id,
                                              Repository.uuid == normalize_uuid(uuid))).first()


def ensure_not_foreign(s: Session, tenant_id: str, uuid: str) -> None:
    """A repository UUID already backed up for another tenant may not be claimed by this one."""
    other = s.scalars(select(Repository.tenant_id).where(Repository.uuid == normalize_uuid(uuid),
                                                         Repository.tenant_id != tenant_id)).first()
    if other is not None:
        raise Forbidden("that repository belongs to another installation", code="foreign_repository")


def upsert_repository(ctx: Context, s: Session, tenant: Tenant, info: RepoInfo) -> tuple[Repository, bool]:
    """Create or update the row for ``info``; renames update names, never the vault path."""
    ensure_not_foreign(s, tenant.id, info.uuid)
    repo = find_repository(s, tenant.id, info.uuid)
    created = repo is None
    if repo is None:
        path = ctx.vault.mirror_path(tenant.workspace_uuid, info.uuid)
        repo = Repository(tenant_id=tenant.id, uuid=info.uuid, slug=info.slug,
                          vault_path=str(path.relative_to(ctx.vault.root)), requested_gen=0, synced_gen=0,
                          snapshot_count=0, size_bytes=0, deleted_upstream=False, state="pending")
        s.add(repo)
    repo.slug = info.slug or repo.slug
    repo.name = info.name or repo.name or repo.slug
    repo.full_name = info.full_name or repo.full_name or f"{tenant.workspace_slug}/{repo.slug}"
    if info.clone_url:
        repo.clone_url = info.clone_url
    record_settings(repo, info.settings)
    s.flush()
    return repo, created


def iso_utc(value) -> str | None:
    """A UTC datetime as ISO 8601 with ``Z`` (None stays None)."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def mark_deleted_upstream(repo: Repository) -> None:
    """Flag a repository deleted on the host; its backups are kept and syncing stops."""
    if not repo.deleted_upstream:
        repo.deleted_upstream, repo.deleted_at = True, utcnow()


def manifest_for(tenant: Tenant, repo: Repository) -> dict:
    """What the vault keeps next to a mirror so it can be found, exported and recreated without the database
    (``repository.settings``: the latest known settings, null until the host showed them)."""
    return {
        "format": 1,
        "workspace": {"uuid": tenant.workspace_uuid, "slug": tenant.workspace_slug, "name": tenant.workspace_name},
        "repository": {"uuid": repo.uuid, "slug": repo.slug, "name": repo.name, "full_name": repo.full_name,
                       "settings": stored_settings(repo),
                       "settings_recorded_at": iso_utc(repo.settings_recorded_at)},
        "tenant_id": tenant.id,
        "repository_id": repo.id,
    }
