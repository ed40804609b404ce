"""Resolving a clone path to the directory git should serve (latest state or a snapshot view)."""
from __future__ import annotations

from pathlib import Path

from .context import Context
from .errors import NotFound
from .workspace import find_snapshot


def resolve_clone_target(ctx: Context, tenant_id: str, workspace_slug: str, repo_slug: str,
                         snapshot_id: str | None) -> Path:
    """The bare repository to serve; reads only local backups (works while the host is down)."""
    repo, refs = find_snapshot(ctx, tenant_id, workspace_slug, repo_slug, snapshot_id)
    path = ctx.vault.root / repo.vault_path
    if not path.exists():
        raise NotFound("no backup exists yet for this repository")
    if snapshot_id is None:
        return path
    return ctx.vault.open(path).snapshot_view(snapshot_id, refs or {})
