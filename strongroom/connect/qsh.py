"""The Connect query string hash (qsh): canonical request and its SHA-256.

Follows Atlassian's "canonical request" rules (reference §3.4) and passes every official
interoperability vector (§3.5, §3.6).
"""
from __future__ import annotations

import hashlib
from urllib.parse import quote, unquote_plus

# The token never signs itself: the ``jwt`` query parameter is left out of the hash.
_JWT_PARAM = "jwt"


def canonical_request(method: str, path: str, query: str = "", base_path: str = "") -> str:
    """Return ``METHOD&canonical-uri&canonical-query`` for a request as seen on the wire."""
    return "&".join((method.upper(), _canonical_uri(path, base_path), _canonical_query(query)))


def query_string_hash(method: str, path: str, query: str = "", base_path: str = "") -> str:
    """Return the qsh claim: lowercase hex SHA-256 of the canonical request."""
    canonical = canonical_request(method, path, query, base_path)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical_uri(path: str, base_path: str) -> str:
    path = _strip_base_path(path, base_path)
    if not path.startswith("/"):
        path = "/" + path
    # Exactly one trailing slash goes (Atlassian's Java and JS implementations); "/" stays "/".
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    # A literal "&" would be read as the separator between the canonical parts.
    return path.replace("&", "%26")


def _strip_base_path(path: str, base_path: str) -> str:
    # The path is hashed relative to the receiver's base URL (the app's baseUrl for incoming
    # requests, baseApiUrl/baseUrl for outgoing ones), so a base path prefix is not part of it.
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    if not base:
        return path
    if path == base or path.startswith(base + "/"):
        return path[len(base):]
    return path


def _canonical_query(query: str) -> str:
    params: dict[str, list[str]] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = unquote_plus(raw_key)  # "+" on the wire means space
        if key == _JWT_PARAM:
            continue
        params.setdefault(key, []).append(unquote_plus(raw_value))
    encoded = sorted(((_encode(key), values) for key, values in params.items()), key=lambda kv: kv[0])
    # Repeated keys: values sorted by their *decoded* form, as Atlassian Connect and the Python
    # atlassian-jwt library do (their JWT-20 quirk); both agree on every official vector.
    return "&".join(f"{key}=" + ",".join(_encode(v) for v in sorted(values)) for key, values in encoded)


def _encode(value: str) -> str:
    # RFC 3986 "for consistency with OAuth1": only A-Z a-z 0-9 - . _ ~ stay literal.
    return quote(value, safe="~")
