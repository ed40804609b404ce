"""Forge's signing keys: fetched from the JWKS URL, cached, refreshed once when a token names an unknown ``kid``.

Refreshes are rate-limited, so tokens with made-up ``kid``s cannot turn us into a JWKS-fetching loop.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import jwt
import requests

from ..errors import AuthError, TransientError

CACHE_SECONDS = 3600
REFRESH_BUDGET = 5  # forced refreshes (unknown kid) per window
REFRESH_WINDOW = 60.0
FETCH_TIMEOUT = 5.0


class JwksUnavailable(TransientError):
    """Forge's signing keys could not be fetched (the caller should retry)."""

    code = "jwks_unavailable"
    status = 503


def fetch_jwks(url: str) -> dict:
    """GET the key set; JSON object with a ``keys`` list, or JwksUnavailable."""
    try:
        response = requests.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False,
                                headers={"Accept": "application/json"})
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise JwksUnavailable("Forge's signing keys could not be fetched") from exc
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise JwksUnavailable("Forge's key set is malformed")
    return body


class JwksCache:
    """The RSA public keys by ``kid``, kept for an hour; thread-safe (one per web process)."""

    def __init__(self, url: str, *, fetch: Callable[[str], dict] = fetch_jwks,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._fetch, self._clock = fetch, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._forced: list[float] = []
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; refetches once when it is unknown (key rotation), else AuthError."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at > CACHE_SECONDS:
                self._load(now)
            elif kid not in self._keys and self._may_force(now):
                self._load(now)
            key = self._keys.get(kid)
        if key is None:
            raise AuthError("the invocation token is signed by an unknown key", code="unknown_signing_key")
        return key

    def _may_force(self, now: float) -> bool:
        self._forced = [t for t in self._forced if now - t < REFRESH_WINDOW]
        if len(self._forced) >= REFRESH_BUDGET:
            return False
        self._forced.append(now)
        return True

    def _load(self, now: float) -> None:
        keys = {}
        for item in self._fetch(self.url)["keys"]:
            # Only RSA signing keys can verify an RS256 token; anything else is ignored, not trusted.
            if isinstance(item, dict) and item.get("kty") == "RSA" and isinstance(item.get("kid"), str) \
                    and item.get("use", "sig") == "sig":
                try:
                    keys[item["kid"]] = jwt.PyJWK(item, algorithm="RS256")
                except jwt.PyJWTError:
                    continue
        self._keys, self._fetched_at = keys, now
