"""The one place that talks to Bitbucket for a tenant: token exchange, REST reads, clone URLs.

Every URL comes from the tenant's credentials (or from links the host itself returned, checked to
be on the tenant's own origins); nothing here knows a hard-coded host. Credentials are attached by
a ``requests`` auth object, so they never appear in URLs, logs or reprs.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterator, Protocol
from urllib.parse import quote, urlsplit

import requests
from atlassian.bitbucket import Cloud

from ..connect.payloads import normalize_uuid
from ..errors import (CredentialRejected, HostUnavailable, InvalidInput, NotFound, PermanentError,
                      RateLimited, RepositoryGone, StrongroomError)
from .credentials import (READ_SCOPES, ConnectCredentials, ConnectJWTAuth, ForeignOrigin, HostCredentials,
                          ScopedCredentials, TokenGrant, origin, safe_origin)
from .ratelimit import retry_after_seconds, send_with_retries

__all__ = [
    "READ_SCOPES", "ConnectCredentials", "ConnectJWTAuth", "ForeignOrigin", "HostClient", "HostCredentials",
    "HostRejected", "MemoryTokenCache", "ScopedCredentials", "TokenCache", "TokenGrant",
]

TOKEN_REFRESH_MARGIN_SECONDS = 300
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
PAGELEN = 100


class HostRejected(PermanentError):
    """The host refused the request itself (a 4xx other than auth, not-found or rate limit)."""

    code = "host_rejected"
    status = 502


class TokenCache(Protocol):
    """Where exchanged access tokens are kept (the store implements it with encryption)."""

    def get(self, key: str) -> tuple[str, float] | None:
        """Return ``(token, expires_at epoch)`` or None."""

    def put(self, key: str, token: str, expires_at: float) -> None:
        """Keep ``token`` until ``expires_at``."""


class MemoryTokenCache:
    """A process-local TokenCache for tests and the CLI."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> tuple[str, float] | None:
        """Return the cached ``(token, expires_at)`` for ``key``."""
        return self._tokens.get(key)

    def put(self, key: str, token: str, expires_at: float) -> None:
        """Cache ``token`` under ``key``."""
        self._tokens[key] = (token, expires_at)

    def __repr__(self) -> str:
        return f"MemoryTokenCache({len(self._tokens)} tokens)"


class HostClient:
    """Bitbucket for one tenant: token exchange, REST reads with retries, git credentials.

    The session becomes the client's own: its ``auth`` is replaced by the credentials' auth.
    """

    def __init__(self, credentials: HostCredentials, *, token_cache: TokenCache,
                 session: requests.Session | None = None, timeout: float = 30, max_retries: int = 4,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._cache = token_cache
        self._session = session if session is not None else requests.Session()
        self._session.auth = credentials.rest_auth()
        self._timeout = timeout
        self._max_retries = max(0, max_retries)
        self._sleep = sleep
        self._clock = clock
        self._origins = {origin(credentials.base_url), origin(credentials.base_api_url)}
        # Retries are ours (typed errors, injectable sleep); the library's own are switched off.
        self._cloud = Cloud(url=credentials.base_api_url, session=self._session,
                            timeout=math.ceil(timeout), backoff_and_retry=False, retry_with_header=False)

    # --- tokens -------------------------------------------------------------------------------

    def access_token(self) -> str:
        """An OAuth access token for this tenant, from the cache until 5 minutes before expiry."""
        key = self._credentials.cache_key
        cached = self._cache.get(key)
        if cached is not None and cached[1] - TOKEN_REFRESH_MARGIN_SECONDS > self._clock():
            return cached[0]
        token, expires_at = self._exchange_token()
        self._cache.put(key, token, expires_at)
        return token

    def verify_credentials(self) -> None:
        """Prove the credentials by exchanging them for a token, bypassing the cache."""
        self._exchange_token()

    def narrowed(self, scopes: tuple[str, ...]) -> "HostClient":
        """A client for the same tenant whose exchanged tokens carry only ``scopes`` (never cached on disk)."""
        inner = self._credentials
        if isinstance(inner, ScopedCredentials):
            inner = inner.inner  # a new scope replaces the old one; it does not stack
        return HostClient(ScopedCredentials(inner, tuple(scopes)), token_cache=MemoryTokenCache(),
                          timeout=self._timeout, max_retries=self._max_retries, sleep=self._sleep, clock=self._clock)

    def git_credentials(self) -> tuple[str, str]:
        """``(username, password)`` for git over HTTPS; pass them as a header, never in a URL."""
        return self._credentials.git_credentials(self.access_token)

    # --- REST ---------------------------------------------------------------------------------

    def get_workspace(self, workspace: str) -> dict:
        """GET /2.0/workspaces/{slug or {uuid}}."""
        return self._get_json(f"workspaces/{_segment(workspace)}", gone=NotFound)

    def iter_repositories(self, workspace: str) -> Iterator[dict]:
        """Every repository of a workspace, following the host's ``next`` links."""
        return self._paged(f"repositories/{_segment(workspace)}", gone=NotFound)

    def get_repository(self, workspace: str, repo_slug_or_uuid: str) -> dict:
        """GET /2.0/repositories/{workspace}/{slug or {uuid}}; 404 raises RepositoryGone."""
        path = f"repositories/{_segment(workspace)}/{_segment(repo_slug_or_uuid)}"
        return self._get_json(path, gone=RepositoryGone)

    def list_refs(self, workspace: str, repo: str) -> dict[str, str]:
        """Branch and tag tips as the host reports them: ``refs/heads/*``, ``refs/tags/*`` -> hash."""
        base = f"repositories/{_segment(workspace)}/{_segment(repo)}/refs"
        refs: dict[str, str] = {}
        for prefix, kind in (("refs/heads/", "branches"), ("refs/tags/", "tags")):
            for item in self._paged(f"{base}/{kind}", gone=RepositoryGone):
                target = item.get("target")
                commit = target.get("hash") if isinstance(target, dict) else None
                if isinstance(item.get("name"), str) and isinstance(commit, str):
                    refs[prefix + item["name"]] = commit
        return refs

    def clone_url(self, repository: dict) -> str:
        """The https clone URL (without any user part) on the tenant's own origin."""
        links = repository.get("links") if isinstance(repository, dict) else None
        clone = links.get("clone") if isinstance(links, dict) else None
        for link in clone if isinstance(clone, list) else ():
            href = link.get("href") if isinstance(link, dict) and link.get("name") == "https" else None
            if isinstance(href, str) and safe_origin(href) == origin(self._credentials.base_url):
                return _without_userinfo(href)
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(full_name, str) or full_name.count("/") != 1:
            raise InvalidInput("repository has neither an https clone link nor a full_name")
        workspace, slug = full_name.split("/")
        return f"{self._credentials.base_url}/{_segment(workspace)}/{_segment(slug)}.git"

    def request_json(self, method: str, path: str, *, json_body: dict | None = None, params: dict | None = None,
                     gone: type[StrongroomError] = NotFound) -> dict:
        """Any REST 2.0 call (path relative to the API root ``/2.0/``, e.g. ``workspaces/x/hooks``), authenticated
        and retried like every other call; an empty body answers ``{}``. For modules that add host operations."""
        url = f"{self._cloud.url}/{path}"
        response = self._send(url, lambda: self._session.request(
            method, url, json=json_body, params=params, timeout=self._timeout,
            headers={"Accept": "application/json"}, allow_redirects=False))
        _raise_for_status(response, gone=gone)
        return _json_object(response) if response.content else {}

    def iter_paged(self, path: str, *, gone: type[StrongroomError] = NotFound) -> Iterator[dict]:
        """Every value of a paginated REST collection, following the host's ``next`` links."""
        return self._paged(path, gone=gone)

    # --- plumbing -----------------------------------------------------------------------------

    def _exchange_token(self) -> tuple[str, float]:
        grant = self._credentials.token_grant()
        if grant is None:
            raise InvalidInput("these credentials are a token already; there is nothing to exchange")
        response = self._send(grant.url, lambda: self._session.post(
            grant.url, data=dict(grant.data), auth=grant.auth, timeout=self._timeout,
            headers={"Accept": "application/json"}, allow_redirects=False))
        if response.status_code in (400, 401, 403):
            raise CredentialRejected(f"the host refused the token exchange ({response.status_code})")
        _raise_for_status(response, gone=HostRejected)
        body = _json_object(response)
        token, expires_in = body.get("access_token"), body.get("expires_in", DEFAULT_TOKEN_LIFETIME_SECONDS)
        if not isinstance(token, str) or not token:
            raise HostUnavailable("the token response has no access_token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
            expires_in = DEFAULT_TOKEN_LIFETIME_SECONDS
        return token, self._clock() + float(expires_in)

    def _get_json(self, path: str, *, gone: type[StrongroomError], params: dict | None = None,
                  absolute: bool = False) -> dict:
        url = path if absolute else f"{self._cloud.url}/{path}"
        response = self._send(url, lambda: self._cloud.get(
            path, params=params, absolute=absolute, advanced_mode=True))
        _raise_for_status(response, gone=gone)
        return _json_object(response)

    def _paged(self, path: str, *, gone: type[StrongroomError]) -> Iterator[dict]:
        url, params, absolute, seen = path, {"pagelen": PAGELEN}, False, set()
        while True:
            page = self._get_json(url, gone=gone, params=params, absolute=absolute)
            values = page.get("values", [])
            if not isinstance(values, list):
                raise HostUnavailable("the host returned a page without a values list")
            yield from (value for value in values if isinstance(value, dict))
            next_url = page.get("next")
            # Follow the host's link verbatim ("refrain from constructing your own URLs").
            if not isinstance(next_url, str) or not next_url or next_url in seen:
                return
            seen.add(next_url)
            url, params, absolute = next_url, None, True

    def _send(self, url: str, call: Callable[[], requests.Response]) -> requests.Response:
        if safe_origin(url) not in self._origins:
            raise ForeignOrigin("refusing to send tenant credentials outside the tenant's origins")
        response = send_with_retries(call, max_retries=self._max_retries, sleep=self._sleep,
                                     clock=self._clock)
        if response.status_code == 429:
            retry_after = retry_after_seconds(response.headers, self._clock())
            raise RateLimited("the host's rate limit is exhausted", retry_after=retry_after)
        return response


def _raise_for_status(response: requests.Response, *, gone: type[StrongroomError]) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (401, 403):
        raise CredentialRejected(f"the host refused our credentials ({status})")
    if status in (404, 410):
        raise gone(f"the host answered {status}")
    if status >= 500:
        raise HostUnavailable(f"the host answered {status}")
    raise HostRejected(f"the host rejected the request ({status})")


def _json_object(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        raise HostUnavailable("the host answered with malformed JSON") from exc
    if not isinstance(body, dict):
        raise HostUnavailable("the host answered with a non-object JSON body")
    return body


def _segment(value: str) -> str:
    """One URL path segment: a slug, or a ``{uuid}`` (normalised), percent-encoded."""
    if not isinstance(value, str) or not value.strip() or value in (".", ".."):
        raise InvalidInput("a workspace or repository must be a slug or a {uuid}")
    if value.startswith("{"):
        value = normalize_uuid(value)
    return quote(value, safe="")  # braces become %7B...%7D


def _without_userinfo(url: str) -> str:
    # Clone links can carry a user ("https://user@bitbucket.org/..."); git gets credentials
    # through the environment instead, so the user part is dropped.
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
