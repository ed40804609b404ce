"""Keeping our record of a tenant's repositories in step with the host (keyed by UUID)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .connect.payloads import normalize_uuid
from .context import Context
from .errors import Forbidden
from .store.models import Repository, Tenant, utcnow


@dataclass(frozen=True)
class RepoInfo:
    """What we learn about a repository from the REST API or an event."""

    uuid: str
    slug: str
    name: str = ""
    full_name: str = ""
    clone_url: str | None = None


def info_from_rest(data: Mapping) -> RepoInfo:
    """Parse a REST 2.0 repository object."""
    full_name = data.get("full_name") or ""
    slug = data.get("slug") or (full_name.split("/", 1)[1] if "/" in full_name else data.get("name", ""))
    clone = next((link.get("href") for link in data.get("links", {}).get("clone", [])
                  if link.get("name") == "https"), None)
    return RepoInfo(uuid=normalize_uuid(data["uuid"]), slug=slug, name=data.get("name") or slug,
                    full_name=full_name, clone_url=clone)


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
    s.flush()
    return repo, created


def mark_deleted_upstream(repo: Repository) -> None:
    """Flag a repository deleted on the host; its backups are kept and syncing stops."""
    if not repo.deleted_upstream:
        repo.deleted_upstream, repo.deleted_at = True, utcnow()


def manifest_for(tenant: Tenant, repo: Repository) -> dict:
    """What the vault keeps next to a mirror so it can be found and exported without the database."""
    return {
        "format": 1,
        "workspace": {"uuid": tenant.workspace_uuid, "slug": tenant.workspace_slug, "name": tenant.workspace_name},
        "repository": {"uuid": repo.uuid, "slug": repo.slug, "name": repo.name, "full_name": repo.full_name},
        "tenant_id": tenant.id,
        "repository_id": repo.id,
    }
