"""Writing to Bitbucket for restores: create a repository, and a token narrowed to pushing.

Least privilege: the everyday client's git token only reads (``repository``); a restore asks the JWT
grant for a token carrying only ``repository:write`` (reference §4.3), keeps it in memory for that one
restore and never stores it.
Creating a repository is a REST call with the installation's own JWT and needs ``repository:admin``.
"""
from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import quote

from ..connect.payloads import normalize_uuid
from ..errors import CredentialRejected, InvalidInput, NotFound, RepositoryGone
from .client import HostClient, HostRejected

WRITE_SCOPES = ("repository:write",)
FORK_POLICIES = ("allow_forks", "no_public_forks", "no_forks")
# Bitbucket slugs: lower case letters, digits, '-', '_' and '.', at most 62 characters.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,61}$")
# Project keys: letters, digits and '_' (checked before a key goes into a URL or a BBQL query).
_PROJECT_KEY = re.compile(r"^[A-Za-z0-9_]{1,128}$")


def write_client(host: HostClient, scopes: tuple[str, ...] = WRITE_SCOPES) -> HostClient:
    """A client for the same tenant whose git token carries only ``scopes``, cached in memory only."""
    return host.narrowed(scopes)


def check_slug(name: object) -> str:
    """A repository slug Bitbucket accepts (what a restored repository is called)."""
    if not isinstance(name, str) or not _SLUG.match(name):
        raise InvalidInput("the repository name must be 1-62 characters: lower-case letters, digits, '-', '_', '.'")
    return name


def check_project_key(key: object) -> str:
    """A project key as Bitbucket writes them."""
    if not isinstance(key, str) or not _PROJECT_KEY.match(key):
        raise InvalidInput("a project key is 1-128 letters, digits or '_'")
    return key


def _workspace(workspace: str) -> str:
    return quote(normalize_uuid(workspace) if workspace.startswith("{") else workspace, safe="")


def _path(workspace: str, slug: str) -> str:
    return f"repositories/{_workspace(workspace)}/{quote(check_slug(slug), safe='')}"


def find_repository(host: HostClient, workspace: str, slug: str) -> dict | None:
    """The host's repository called ``slug`` in ``workspace``, or None if there is none."""
    try:
        return host.request_json("GET", _path(workspace, slug), gone=RepositoryGone)
    except RepositoryGone:
        return None


def creation_body(settings: Mapping) -> dict:
    """The body of ``POST /2.0/repositories/{workspace}/{slug}`` for ``settings`` (the restore plan's form).

    Private unless the settings say public in so many words: a restore never makes a private repository
    public. ``mainbranch`` is not sent: Bitbucket ignores it (BCLOUD-20340); the first push decides it.
    """
    body: dict = {"scm": "git", "is_private": settings.get("is_private") is not False}
    for key in ("description", "language"):
        if isinstance(settings.get(key), str) and settings[key]:
            body[key] = settings[key]
    if settings.get("fork_policy") in FORK_POLICIES:
        body["fork_policy"] = settings["fork_policy"]
    project = settings.get("project")
    if isinstance(project, Mapping) and project.get("key"):
        body["project"] = {"key": check_project_key(project["key"])}
    return body


def create_repository(host: HostClient, workspace: str, slug: str, settings: Mapping | None = None) -> dict:
    """POST /2.0/repositories/{workspace}/{slug}: an empty git repository with ``settings`` (see
    ``creation_body``; needs ``repository:admin``). An unknown project key is a 400 (HostRejected)."""
    return host.request_json("POST", _path(workspace, slug), json_body=creation_body(settings or {}))


def project_exists(host: HostClient, workspace: str, key: str) -> bool | None:
    """Whether the workspace has project ``key``: True, False, or None when the host will not tell.

    ``GET /2.0/workspaces/{ws}/projects/{key}`` needs the ``project`` scope, which the Connect app does
    not ask for; without it, a repository listed in that project (``repository`` scope) proves it exists,
    while an empty listing proves nothing (the project may exist and be empty).
    """
    key = check_project_key(key)
    try:
        host.request_json("GET", f"workspaces/{_workspace(workspace)}/projects/{key}")
        return True
    except NotFound:
        return False
    except (CredentialRejected, HostRejected):
        pass  # 401/403: not allowed to read projects
    page = host.request_json("GET", f"repositories/{_workspace(workspace)}",
                             params={"q": f'project.key="{key}"', "pagelen": 1}, gone=NotFound)
    return True if page.get("values") else None


def existing_slugs(host: HostClient, workspace: str) -> set[str]:
    """Every repository slug in the workspace (one REST call per 100 repositories)."""
    return {r["slug"] for r in host.iter_paged(f"repositories/{_workspace(workspace)}")
            if isinstance(r.get("slug"), str)}
