"""Self-hosted token mode on the host side: workspace access tokens and Atlassian API tokens.

- Workspace access token (WAT): `Authorization: Bearer` for REST (Basic is refused), `x-token-auth`
  for git; OAuth-style scopes that imply others as for apps; optional expiry; bound to one workspace.
- API token: Basic `email:token` for REST, `x-bitbucket-api-token-auth` (or the user's nickname) for
  git; Forge-style scopes (`read:repository:bitbucket`, ...) that never imply each other; mandatory
  expiry of at most a year; acts as a user (the workspace's admin unless `owner=False`).
Expired or revoked tokens answer 401 on REST and git (reference §12, §15 "token path").
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .auth import Principal, decode_basic, expand_scopes

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

TOKEN_USER = "x-token-auth"
API_TOKEN_USER = "x-bitbucket-api-token-auth"
MAX_API_TOKEN_SECONDS = 365 * 86400
DEFAULT_WAT_SCOPES = ("repository", "pullrequest", "webhook", "project")
DEFAULT_API_TOKEN_SCOPES = ("read:repository:bitbucket", "read:pullrequest:bitbucket", "read:webhook:bitbucket",
                            "write:webhook:bitbucket", "read:workspace:bitbucket")
# API-token (Forge-style) scope names -> the sandbox's internal scope names (no implications, F12).
API_SCOPE_MAP = {
    "read:repository:bitbucket": "repository", "write:repository:bitbucket": "repository:write",
    "admin:repository:bitbucket": "repository:admin", "delete:repository:bitbucket": "repository:delete",
    "read:pullrequest:bitbucket": "pullrequest", "write:pullrequest:bitbucket": "pullrequest:write",
    "read:webhook:bitbucket": "webhook:read", "write:webhook:bitbucket": "webhook:write",
    "delete:webhook:bitbucket": "webhook:write", "read:project:bitbucket": "project",
    "admin:project:bitbucket": "project:admin", "read:workspace:bitbucket": "workspace",
    "read:user:bitbucket": "account", "read:pipeline:bitbucket": "pipeline", "read:issue:bitbucket": "issue",
}


@dataclass
class TokenCredential:
    """A workspace access token or an API token."""

    kind: str  # "workspace-token" | "api-token"
    token: str = field(repr=False)
    workspace_uuid: str
    scopes: frozenset[str]  # internal names, already expanded where the kind implies
    expires_at: float | None
    email: str | None = None
    nickname: str | None = None
    owner: bool = True  # may install workspace hooks (workspace owner / admin-created WAT)
    revoked: bool = False

    def valid(self) -> bool:
        return not self.revoked and (self.expires_at is None or time.time() < self.expires_at)

    def principal(self) -> Principal:
        return Principal(self.kind, self.workspace_uuid, self.scopes, rate_key=f"{self.kind}:{id(self)}")


class TokenMode:
    """The credential store for token mode; also answers "who is this" for REST and git."""

    def __init__(self, sb: "Sandbox") -> None:
        self.sb = sb
        self._creds: dict[str, TokenCredential] = {}
        self._lock = threading.Lock()

    # --- issuing (what a workspace admin does in the Bitbucket UI) --------------------------------
    def issue_workspace_token(self, workspace: str, *, scopes: tuple[str, ...] | list[str] = DEFAULT_WAT_SCOPES,
                              expires_in: float | None = None, owner: bool = True) -> str:
        """A workspace access token (Premium plans); `expires_in` seconds, or no expiry."""
        ws = self.sb.workspace(workspace)
        token = "ATCTT" + secrets.token_urlsafe(40)
        expires = time.time() + expires_in if expires_in is not None else None
        self._add(TokenCredential("workspace-token", token, ws.uuid, expand_scopes(scopes), expires, owner=owner))
        return token

    def issue_api_token(self, workspace: str, *, scopes: tuple[str, ...] | list[str] = DEFAULT_API_TOKEN_SCOPES,
                        expires_in: float = 30 * 86400, owner: bool = True) -> tuple[str, str]:
        """An API token of the workspace's admin user; returns (email, token). Expiry is mandatory (≤ 1 year)."""
        if not 0 < expires_in <= MAX_API_TOKEN_SECONDS:
            raise ValueError("API tokens expire within one year")
        unknown = set(scopes) - set(API_SCOPE_MAP)
        if unknown:
            raise ValueError(f"unknown API token scopes {sorted(unknown)}")
        ws = self.sb.workspace(workspace)
        token = "ATATT" + secrets.token_urlsafe(40)
        self._add(TokenCredential("api-token", token, ws.uuid, frozenset(API_SCOPE_MAP[s] for s in scopes),
                                  time.time() + expires_in, email=ws.actor.email, nickname=ws.actor.nickname,
                                  owner=owner))
        return ws.actor.email, token

    def revoke(self, token: str) -> None:
        """The admin deletes the token: REST and git answer 401 from now on."""
        with self._lock:
            self._creds[token].revoked = True

    def expire(self, token: str) -> None:
        """The token reaches its expiry date now."""
        with self._lock:
            self._creds[token].expires_at = time.time() - 1

    def credential(self, token: str) -> TokenCredential:
        with self._lock:
            return self._creds[token]

    def _add(self, cred: TokenCredential) -> None:
        with self._lock:
            self._creds[cred.token] = cred

    def _valid(self, token: str) -> TokenCredential | None:
        with self._lock:
            cred = self._creds.get(token)
        return cred if cred is not None and cred.valid() else None

    # --- authentication ---------------------------------------------------------------------
    def rest_principal(self, scheme: str, value: str) -> Principal | None:
        """Bearer <access token>, or Basic email:<API token>; None when this store does not know them."""
        if scheme == "Bearer":
            cred = self._valid(value)
            return cred.principal() if cred is not None and cred.kind == "workspace-token" else None
        if scheme.lower() == "basic":
            pair = decode_basic(value)
            cred = self._valid(pair[1]) if pair else None
            if cred is not None and cred.kind == "api-token" and pair[0] == cred.email:
                return cred.principal()
        return None

    def git_principal(self, username: str, password: str) -> Principal | None:
        """HTTP Basic for git: `x-token-auth` + access token, or the API-token user + API token."""
        cred = self._valid(password)
        if cred is None:
            return None
        if cred.kind == "workspace-token" and username == TOKEN_USER:
            return cred.principal()
        if cred.kind == "api-token" and username in (API_TOKEN_USER, cred.nickname):
            return cred.principal()
        return None

    def is_owner(self, principal: Principal) -> bool:
        """Only workspace owners may install workspace hooks (an admin-made WAT counts, T6)."""
        with self._lock:
            return any(c.principal().rate_key == principal.rate_key and c.owner for c in self._creds.values())
