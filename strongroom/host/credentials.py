"""Tenant credentials and the auth that carries them: which host may see what.

Each credential kind says how REST and git authenticate; ``ConnectJWTAuth`` is the one signer of
outgoing Connect requests and refuses any origin that is not the tenant's own.
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from ..connect.jwt import sign_request_token
from ..errors import InvalidInput, PermanentError, TransientError

TOKEN_PATH = "/site/oauth2/access_token"
JWT_GRANT_TYPE = "urn:bitbucket:oauth2:jwt"
# What everyday work needs from an exchanged token: reading repositories (git fetch, ls-remote).
READ_SCOPES = ("repository",)
GIT_TOKEN_USERNAME = "x-token-auth"  # "The literal string x-token-auth ... is required" (reference §4.4)


class ForeignOrigin(PermanentError):
    """Refused to send a tenant's credentials to an origin that is not the tenant's own."""

    code = "foreign_origin"
    status = 502


@dataclass(frozen=True)
class TokenGrant:
    """How to obtain an access token: POST ``data`` to ``url`` authenticated by ``auth``."""

    url: str
    data: Mapping[str, str]
    auth: AuthBase = field(repr=False)


class HostCredentials(Protocol):
    """How one tenant authenticates. A new kind (token mode, Forge) is a new class, not a new branch.

    Token mode (Bearer access token, or Basic email:api-token) and Forge (Bearer system token) return
    their static auth from ``rest_auth``, ``None`` from ``token_grant`` and their own git username.
    """

    @property
    def base_url(self) -> str:
        """The site origin (git, OAuth token endpoint), e.g. ``https://bitbucket.org``."""

    @property
    def base_api_url(self) -> str:
        """The REST origin, e.g. ``https://api.bitbucket.org`` (``/2.0`` is appended)."""

    @property
    def cache_key(self) -> str:
        """The TokenCache key for this tenant's exchanged access tokens."""

    def rest_auth(self) -> AuthBase:
        """The auth attached to every REST request (on the tenant's own origins only)."""

    def token_grant(self) -> TokenGrant | None:
        """The exchange that yields an access token, or None when the credential already is one."""

    def git_credentials(self, access_token: Callable[[], str]) -> tuple[str, str]:
        """``(username, password)`` for git over HTTPS; ``access_token`` yields an exchanged token."""


@dataclass(frozen=True)
class ConnectCredentials:
    """A Connect installation: the app key, the clientKey and the installation's shared secret."""

    app_key: str
    client_key: str
    shared_secret: str = field(repr=False)
    base_url: str
    base_api_url: str

    def __post_init__(self) -> None:
        if not (self.app_key and self.client_key and self.shared_secret):
            raise InvalidInput("Connect credentials need an app key, a clientKey and a shared secret")
        for name in ("base_url", "base_api_url"):
            object.__setattr__(self, name, _checked_base(getattr(self, name), name))

    @property
    def cache_key(self) -> str:
        """Tokens are cached per installation."""
        return f"connect:{self.client_key}"

    def rest_auth(self) -> AuthBase:
        """A fresh Connect JWT per request."""
        return ConnectJWTAuth(self)

    def token_grant(self) -> TokenGrant:
        """The JWT grant: POST {base_url}/site/oauth2/access_token with a Connect JWT."""
        return TokenGrant(self.base_url + TOKEN_PATH, {"grant_type": JWT_GRANT_TYPE}, ConnectJWTAuth(self))

    def git_credentials(self, access_token: Callable[[], str]) -> tuple[str, str]:
        """The exchanged access token with the ``x-token-auth`` username."""
        return GIT_TOKEN_USERNAME, access_token()


class ConnectJWTAuth(AuthBase):
    """Signs each request with a fresh Connect JWT (iss = app key, sub = clientKey, qsh)."""

    def __init__(self, credentials: ConnectCredentials, *, lifetime: int = 180,
                 clock: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._lifetime = lifetime
        self._clock = clock

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        creds = self._credentials
        url = request.url or ""
        # The qsh path is relative to the base the request is addressed to: "/2.0/..." for the API,
        # "/site/oauth2/access_token" for the token endpoint (reference §3.4, §4.1).
        base_path = _base_path_for(url, (creds.base_api_url, creds.base_url))
        parts = urlsplit(url)
        token = sign_request_token(
            creds.shared_secret, issuer=creds.app_key, subject=creds.client_key,
            method=request.method or "GET", path=parts.path or "/", query=parts.query,
            base_path=base_path, lifetime=self._lifetime, now=self._clock(),
        )
        request.headers["Authorization"] = f"JWT {token}"  # scheme is case-sensitive at Bitbucket
        return request

    def __repr__(self) -> str:
        return f"ConnectJWTAuth(client_key={self._credentials.client_key!r})"


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or {"http": 80, "https": 443}.get(scheme)


def safe_origin(url: str) -> tuple[str, str, int | None] | None:
    """Like :func:`origin`, but None for a URL whose port does not parse."""
    try:
        return origin(url)
    except ValueError:  # a malformed port
        return None


def _base_path_for(url: str, bases: tuple[str, ...]) -> str:
    target, path = safe_origin(url), urlsplit(url).path or "/"
    candidates = [urlsplit(base).path.rstrip("/") for base in bases if origin(base) == target]
    if not candidates:
        raise ForeignOrigin("refusing to sign a request for a foreign origin")
    under = [base for base in candidates if not base or path == base or path.startswith(base + "/")]
    if not under:
        raise ForeignOrigin("refusing to sign a request outside the tenant's base URLs")
    return max(under, key=len)


def _checked_base(url: str, name: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except (TypeError, ValueError, AttributeError):
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{name} must be an absolute http(s) URL")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(f"{name} must not carry credentials, a query or a fragment")
    return url.rstrip("/")


# --- token mode and Forge: credentials that already are tokens (no exchange) -------------------

API_TOKEN_GIT_USERNAME = "x-bitbucket-api-token-auth"  # static git user for Atlassian API tokens (T4)
TOKEN_KINDS = ("access_token", "api_token")


class CredentialUnavailable(TransientError):
    """No usable credential right now (e.g. the next Forge tick brings a fresh system token)."""

    code = "credential_unavailable"
    status = 503


class HeaderAuth(AuthBase):
    """Attaches one fixed ``Authorization`` value, and only on the tenant's own origins."""

    def __init__(self, value: str, bases: tuple[str, ...]) -> None:
        self._value = value
        self._origins = {origin(base) for base in bases}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if safe_origin(request.url or "") not in self._origins:
            raise ForeignOrigin("refusing to send a tenant's token to a foreign origin")
        request.headers["Authorization"] = self._value
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({self._value.split(' ', 1)[0]} …)"


def _check_token_and_bases(creds) -> None:
    """Validate a static token and normalise the two base URLs of a token credential."""
    if not isinstance(creds.token, str) or not creds.token.strip() or any(c.isspace() for c in creds.token):
        raise InvalidInput("the token must be a non-empty string without whitespace")
    for name in ("base_url", "base_api_url"):
        object.__setattr__(creds, name, _checked_base(getattr(creds, name), name))


@dataclass(frozen=True)
class AccessTokenCredentials:
    """A workspace (or project/repository) access token: Bearer for REST, ``x-token-auth`` for git."""

    token: str = field(repr=False)
    base_url: str
    base_api_url: str

    def __post_init__(self) -> None:
        _check_token_and_bases(self)

    @property
    def cache_key(self) -> str:
        """Nothing is exchanged, so nothing is cached; the key only has to be stable."""
        return f"static:{self.base_api_url}"

    def rest_auth(self) -> AuthBase:
        """``Authorization: Bearer <token>`` (access tokens refuse Basic, T8 #917)."""
        return HeaderAuth(f"Bearer {self.token}", (self.base_url, self.base_api_url))

    def token_grant(self) -> None:
        """The credential is a token already."""
        return None

    def git_credentials(self, access_token: Callable[[], str]) -> tuple[str, str]:
        """The token itself with the ``x-token-auth`` username."""
        return GIT_TOKEN_USERNAME, self.token


@dataclass(frozen=True)
class ForgeSystemCredentials(AccessTokenCredentials):
    """A Forge app system token (``x-forge-oauth-system``): Bearer for REST, ``x-token-auth`` for git (F3, F5)."""


@dataclass(frozen=True)
class ApiTokenCredentials:
    """An Atlassian API token with scopes: Basic ``email:token`` for REST, a static git username (T4)."""

    email: str
    token: str = field(repr=False)
    base_url: str
    base_api_url: str

    def __post_init__(self) -> None:
        if not isinstance(self.email, str) or "@" not in self.email or ":" in self.email:
            raise InvalidInput("an API token needs the Atlassian account's email address")
        _check_token_and_bases(self)

    @property
    def cache_key(self) -> str:
        """Nothing is exchanged, so nothing is cached; the key only has to be stable."""
        return f"static:{self.base_api_url}"

    def rest_auth(self) -> AuthBase:
        """HTTP Basic with the account email and the token."""
        basic = base64.b64encode(f"{self.email}:{self.token}".encode()).decode("ascii")
        return HeaderAuth(f"Basic {basic}", (self.base_url, self.base_api_url))

    def token_grant(self) -> None:
        """The credential is a token already."""
        return None

    def git_credentials(self, access_token: Callable[[], str]) -> tuple[str, str]:
        """The token with the static ``x-bitbucket-api-token-auth`` username."""
        return API_TOKEN_GIT_USERNAME, self.token


def token_credentials(kind: str, token: str, *, base_url: str, base_api_url: str,
                      email: str | None = None) -> AccessTokenCredentials | ApiTokenCredentials:
    """The credential object for a token-mode ``kind`` (``access_token`` or ``api_token``)."""
    if kind == "access_token":
        return AccessTokenCredentials(token, base_url, base_api_url)
    if kind == "api_token":
        return ApiTokenCredentials(email or "", token, base_url, base_api_url)
    raise InvalidInput(f"unknown credential kind {kind!r}")



def derive_base_url(api_base_url: str) -> str:
    """The web/git origin that belongs to a REST origin: ``api.bitbucket.org`` -> ``bitbucket.org``."""
    parts = urlsplit(api_base_url.rstrip("/"))
    host = parts.netloc[4:] if parts.netloc.lower().startswith("api.") else parts.netloc
    return parts._replace(netloc=host, path="").geturl()


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
