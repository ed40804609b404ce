"""Writing to Bitbucket for restores: create a repository, and a token narrowed to pushing.

Least privilege: the everyday client's git token only reads (``repository``); a restore asks the JWT
grant for a token carrying only ``repository:write`` (reference §4.3), keeps it in memory for that one
restore and never stores it.
Creating a repository is a REST call with the installation's own JWT and needs ``repository:admin``.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from ..connect.payloads import normalize_uuid
from ..errors import InvalidInput, RepositoryGone
from .client import HostClient

WRITE_SCOPES = ("repository:write",)
# Bitbucket slugs: lower case letters, digits, '-', '_' and '.', at most 62 characters.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,61}$")


def write_client(host: HostClient, scopes: tuple[str, ...] = WRITE_SCOPES) -> HostClient:
    """A client for the same tenant whose git token carries only ``scopes``, cached in memory only."""
    return host.narrowed(scopes)


def check_slug(name: object) -> str:
    """A repository slug Bitbucket accepts (what a restored repository is called)."""
    if not isinstance(name, str) or not _SLUG.match(name):
        raise InvalidInput("the repository name must be 1-62 characters: lower-case letters, digits, '-', '_', '.'")
    return name


def _path(workspace: str, slug: str) -> str:
    ws = normalize_uuid(workspace) if workspace.startswith("{") else workspace
    return f"repositories/{quote(ws, safe='')}/{quote(check_slug(slug), safe='')}"


def find_repository(host: HostClient, workspace: str, slug: str) -> dict | None:
    """The host's repository called ``slug`` in ``workspace``, or None if there is none."""
    try:
        return host.request_json("GET", _path(workspace, slug), gone=RepositoryGone)
    except RepositoryGone:
        return None


def create_repository(host: HostClient, workspace: str, slug: str, *, is_private: bool = True) -> dict:
    """POST /2.0/repositories/{workspace}/{slug}: an empty git repository (needs ``repository:admin``)."""
    body = {"scm": "git", "is_private": bool(is_private)}
    return host.request_json("POST", _path(workspace, slug), json_body=body)


def existing_slugs(host: HostClient, workspace: str) -> set[str]:
    """Every repository slug in the workspace (one REST call per 100 repositories)."""
    ws = normalize_uuid(workspace) if workspace.startswith("{") else workspace
    return {r["slug"] for r in host.iter_paged(f"repositories/{quote(ws, safe='')}")
            if isinstance(r.get("slug"), str)}
