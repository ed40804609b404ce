"""Authentication on the host side: scopes, Connect JWTs (both directions), OAuth access tokens.

Independent of Strongroom's own JWT code on purpose; built on PyJWT and Atlassian's `atlassian_jwt`.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import jwt
from atlassian_jwt.url_utils import hash_url

from .model import AccessToken, Installation, Repository

# bitbucket-platform.md §1.2 — the Connect/OAuth scope names a descriptor may request.
ALLOWED_SCOPES = frozenset({
    "repository", "repository:write", "repository:admin", "repository:delete", "pullrequest",
    "pullrequest:write", "issue", "issue:write", "wiki", "snippet", "snippet:write", "webhook", "account",
    "account:write", "email", "team", "team:write", "project", "project:admin", "pipeline", "pipeline:write",
    "pipeline:variable", "runner", "runner:write", "test", "test:write"})

# Which scopes a scope grants as well. `repository:admin` deliberately does NOT imply read (§1.2).
IMPLIED = {
    "repository:write": {"repository"}, "pullrequest": {"repository"},
    "pullrequest:write": {"pullrequest", "repository:write"}, "issue:write": {"issue"},
    "snippet:write": {"snippet"}, "account:write": {"account"}, "team:write": {"team"},
    "project:admin": {"project"}, "pipeline:write": {"pipeline"},
    "pipeline:variable": {"pipeline:write"}, "runner:write": {"runner"}, "test:write": {"test"}}

# §1.3 — events the Connect `webhooks` module accepts.
CONNECT_EVENTS = frozenset({
    "issue:comment_created", "issue:created", "issue:updated", "project:updated", "pullrequest:approved",
    "pullrequest:comment_created", "pullrequest:comment_deleted", "pullrequest:created",
    "pullrequest:fulfilled", "pullrequest:rejected", "pullrequest:superseded", "pullrequest:unapproved",
    "pullrequest:updated", "pullrequest:changes_request_created", "pullrequest:changes_request_removed",
    "repo:branch_created", "repo:branch_deleted", "repo:commit_comment_created",
    "repo:commit_status_created", "repo:commit_status_updated", "repo:created", "repo:deleted", "repo:fork",
    "repo:imported", "repo:push", "repo:transfer", "repo:updated", "user:account_property_changed"})

_EVENT_SCOPE = {"repo": "repository", "pullrequest": "pullrequest", "issue": "issue", "project": "project",
                "user": "account"}

JWT_LEEWAY = 30  # seconds of clock skew tolerated on exp/iat
HOST_JWT_LIFETIME = 3600  # lifecycle and webhook tokens (observed exp - iat)


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes plus everything they imply."""
    out, todo = set(), list(scopes)
    while todo:
        s = todo.pop()
        if s not in out:
            out.add(s)
            todo.extend(IMPLIED.get(s, ()))
    return frozenset(out)


def event_scope(event: str) -> str:
    """The scope an app needs to receive `event` (webhooks are filtered by scopes since 2020, §1.2)."""
    return _EVENT_SCOPE.get(event.split(":", 1)[0], "repository")


class AuthError(Exception):
    """Authentication or authorisation failed; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Principal:
    """Who is calling: an installation (Connect JWT) or the holder of an access token."""

    kind: str  # "connect-jwt" | "access-token"
    workspace_uuid: str
    scopes: frozenset[str]  # expanded
    rate_key: str
    client_key: str | None = None
    repository_uuid: str | None = None  # token limited to one repository (`bitbucket_repository`)

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    def can_see(self, repo: Repository) -> bool:
        if repo.workspace_uuid != self.workspace_uuid:
            return False
        return self.repository_uuid is None or self.repository_uuid == repo.uuid


# --- the Authorization header -------------------------------------------------------------------

def split_authorization(header: str | None) -> tuple[str, str] | None:
    """`("JWT", token)`, `("Bearer", token)`, `("Basic", b64)`... scheme kept case-sensitive."""
    if not header or " " not in header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    return scheme, value.strip()


def decode_basic(value: str) -> tuple[str, str] | None:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


def looks_like_jwt(value: str) -> bool:
    try:
        jwt.get_unverified_header(value)
        return True
    except jwt.PyJWTError:
        return False


# --- JWTs the host sends (lifecycle, webhooks) ---------------------------------------------------

def sign_host_jwt(client_key: str, secret: str, method: str, relative_url: str, *,
                  lifetime: int = HOST_JWT_LIFETIME, now: int | None = None) -> str:
    """HS256 token as Bitbucket signs callbacks: iss = aud = clientKey, qsh over the app-relative URL."""
    iat = int(now if now is not None else time.time())
    claims = {"iss": client_key, "iat": iat, "qsh": hash_url(method, relative_url), "aud": client_key,
              "exp": iat + lifetime}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


# --- JWTs the host receives (REST, token endpoint) -----------------------------------------------

def verify_app_jwt(token: str, candidates: Callable[[str, str], list[Installation]],
                   qsh_ok: Callable[[str | None], bool]) -> tuple[Installation, dict]:
    """Verify an app's JWT (iss = app key, sub = clientKey, HS256 only); return the installation."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError(401, "Malformed JWT") from None
    if header.get("alg") != "HS256":
        raise AuthError(401, "Unsupported JWT algorithm; only HS256 is accepted")
    iss, sub = unverified.get("iss"), unverified.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str):
        raise AuthError(401, "JWT must carry iss (app key) and sub (clientKey)")
    installs = candidates(iss, sub)
    if not installs:
        raise AuthError(401, "No installation matches the JWT issuer and subject")
    for inst in installs:
        try:
            claims = jwt.decode(token, inst.shared_secret, algorithms=["HS256"], leeway=JWT_LEEWAY,
                                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False})
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "JWT expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"Invalid JWT: {exc}") from None
        if not qsh_ok(claims.get("qsh")):
            raise AuthError(401, "JWT query string hash (qsh) does not match the request")
        return inst, claims
    raise AuthError(401, "JWT signature verification failed")


# --- OAuth access tokens -------------------------------------------------------------------------

class TokenStore:
    """Access tokens issued by the JWT grant; bound to an installation, revoked on uninstall."""

    def __init__(self, ttl: int = 7200) -> None:
        self.ttl = ttl
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    def issue(self, inst: Installation, scopes: Iterable[str], repository_uuid: str | None = None) -> AccessToken:
        tok = AccessToken(token=secrets.token_urlsafe(48), client_key=inst.client_key,
                          workspace_uuid=inst.workspace_uuid, scopes=tuple(sorted(scopes)),
                          expires_at=time.time() + self.ttl, repository_uuid=repository_uuid)
        with self._lock:
            self._tokens[tok.token] = tok
        return tok

    def lookup(self, token: str) -> AccessToken | None:
        with self._lock:
            tok = self._tokens.get(token)
        return tok if tok is not None and tok.valid() else None

    def revoke_installation(self, client_key: str) -> None:
        with self._lock:
            for tok in self._tokens.values():
                if tok.client_key == client_key:
                    tok.revoked = True

    def expire_all(self) -> None:
        now = time.time()
        with self._lock:
            for tok in self._tokens.values():
                tok.expires_at = min(tok.expires_at, now - 1)

    def principal(self, tok: AccessToken) -> Principal:
        return Principal("access-token", tok.workspace_uuid, expand_scopes(tok.scopes),
                         rate_key=f"token:{tok.token}", client_key=tok.client_key,
                         repository_uuid=tok.repository_uuid)
