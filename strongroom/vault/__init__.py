"""The git layer: the only place in Strongroom that runs git (see ``git.run_git``)."""
from __future__ import annotations

from .git import GitCredentials, GitResult, RefNameConflict, popen_git, run_git
from .journal import SnapshotEntry, new_snapshot_id
from .maintenance import rotating_subset
from .mirror import KEEP_PREFIX, Mirror, SyncResult, Vault
from .serve import GitHttpResponse, serve_git_http

__all__ = [
    "GitCredentials", "GitHttpResponse", "GitResult", "KEEP_PREFIX", "Mirror", "RefNameConflict",
    "SnapshotEntry", "SyncResult", "Vault", "new_snapshot_id", "popen_git", "rotating_subset",
    "run_git", "serve_git_http",
]
