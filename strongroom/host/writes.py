"""Writing to Bitbucket for restores: create a repository, and a token narrowed to pushing.

Least privilege: the everyday client reads; a restore asks the JWT grant for a token carrying only
``repository:write`` (reference §4.3), keeps it in memory for that one restore and never stores it.
Creating a repository is a REST call with the installation's own JWT and needs ``repository:admin``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from requests.auth import AuthBase

from ..connect.payloads import normalize_uuid
from ..errors import InvalidInput, RepositoryGone
from .client import HostClient, MemoryTokenCache
from .credentials import HostCredentials, TokenGrant

WRITE_SCOPES = ("repository:write",)
# Bitbucket slugs: lower case letters, digits, '-', '_' and '.', at most 62 characters.
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,61}$")


@dataclass(frozen=True)
class ScopedCredentials:
    """Another credential whose exchanged tokens carry only ``scopes`` (the JWT grant's ``scope``).

    REST keeps the inner credential's auth; only the exchanged (git) token is narrowed. A credential
    that already is a token (token mode, Forge) cannot be narrowed and is used as it is.
    """

    inner: HostCredentials
    scopes: tuple[str, ...]

    @property
    def base_url(self) -> str:
        """The inner credential's site origin."""
        return self.inner.base_url

    @property
    def base_api_url(self) -> str:
        """The inner credential's REST origin."""
        return self.inner.base_api_url

    @property
    def cache_key(self) -> str:
        """Never the inner key: a narrowed token must not be mistaken for the everyday one."""
        return f"{self.inner.cache_key}|scope={' '.join(self.scopes)}"

    def rest_auth(self) -> AuthBase:
        """The inner credential's REST auth."""
        return self.inner.rest_auth()

    def token_grant(self) -> TokenGrant | None:
        """The inner grant with ``scope`` added (space-separated, as OAuth 2 writes scopes)."""
        grant = self.inner.token_grant()
        if grant is None:
            return None
        return TokenGrant(grant.url, {**grant.data, "scope": " ".join(self.scopes)}, grant.auth)

    def git_credentials(self, access_token) -> tuple[str, str]:
        """The inner credential's git user with the narrowed token."""
        return self.inner.git_credentials(access_token)


def write_client(host: HostClient, scopes: tuple[str, ...] = WRITE_SCOPES) -> HostClient:
    """A client for the same tenant whose git token carries only ``scopes``, cached in memory only."""
    # Same package: the credential object never leaves strongroom.host.
    narrowed = ScopedCredentials(host._credentials, tuple(scopes))  # noqa: SLF001
    return HostClient(narrowed, token_cache=MemoryTokenCache())


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
