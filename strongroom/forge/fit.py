"""Verifying a Forge Invocation Token (FIT): RS256 only, ``iss``, ``aud`` = our app id, ``exp``/``nbf``.

After verification the token's claims are trusted: the installation id, the workspace (from the
installation contexts, or the UI module's context) and the Bitbucket API base URL (reference §6).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import jwt

from ..connect.payloads import normalize_uuid
from ..errors import AuthError, InvalidInput
from .jwks import JwksCache

FIT_ISSUER = "forge/invocation-token"
APP_ARI_PREFIX = "ari:cloud:ecosystem::app/"
LEEWAY_SECONDS = 10
_WORKSPACE_ARI = re.compile(r"ari:cloud:bitbucket::workspace/(\{?[0-9a-fA-F-]{36}\}?)")


@dataclass(frozen=True)
class Invocation:
    """Who called, verified: one Forge installation in one Bitbucket workspace."""

    installation_id: str
    workspace_uuid: str  # normalised {uuid}
    api_base_url: str | None
    module_key: str | None
    principal: str | None  # the invoking user's account id (UI calls only)
    claims: dict = field(repr=False, default_factory=dict)


def normalize_app_id(app_id: str) -> str:
    """A bare app uuid becomes the ``ari:cloud:ecosystem::app/<uuid>`` audience (as ACE does)."""
    return app_id if app_id.startswith(APP_ARI_PREFIX) else APP_ARI_PREFIX + app_id


def verify_invocation_token(authorization: str | None, *, app_id: str, keys: JwksCache) -> Invocation:
    """Verify ``Authorization: Bearer <FIT>``; AuthError for anything not signed by Forge for this app."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("a Forge invocation token is required", code="missing_token")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError("malformed invocation token", code="invalid_token") from exc
    if header.get("alg") != "RS256":  # explicit allow-list: never HS256 with a public key, never none
        raise AuthError("invocation tokens must be signed with RS256", code="invalid_algorithm")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise AuthError("the invocation token names no signing key", code="invalid_token")
    key = keys.key_for(header["kid"])
    claims = _decode(token, key, normalize_app_id(app_id))
    return _invocation(claims)


def _decode(token: str, key: jwt.PyJWK, audience: str) -> dict:
    try:
        return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=FIT_ISSUER,
                          leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("the invocation token expired", code="token_expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError("the invocation token is for another app", code="invalid_audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise AuthError("the invocation token was not issued by Forge", code="invalid_issuer") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("the invocation token is invalid", code="invalid_token") from exc


def _invocation(claims: dict) -> Invocation:
    app = claims.get("app") if isinstance(claims.get("app"), dict) else {}
    installation = app.get("installation") if isinstance(app.get("installation"), dict) else {}
    installation_id = app.get("installationId") or installation.get("id")
    if not isinstance(installation_id, str) or not installation_id:
        raise AuthError("the invocation token names no installation", code="invalid_token")
    contexts = [c for c in installation.get("contexts") or [] if isinstance(c, dict) and c.get("name") == "bitbucket"]
    named = [c.get("workspaceId") for c in contexts]
    context = claims.get("context") if isinstance(claims.get("context"), dict) else {}
    named.append(context.get("workspaceId"))
    install_context = context.get("installContext")
    ari = _WORKSPACE_ARI.fullmatch(install_context) if isinstance(install_context, str) else None
    named.append(ari.group(1) if ari else None)
    workspaces = {_uuid(w) for w in named if w is not None}
    if len(workspaces) != 1:  # none, or two that disagree: refuse rather than guess
        raise AuthError("the invocation token does not name exactly one workspace", code="invalid_token")
    api_base = (contexts[0].get("apiBaseUrl") if contexts else None) or app.get("apiBaseUrl")
    module = app.get("module") if isinstance(app.get("module"), dict) else {}
    principal = claims.get("principal")
    return Invocation(installation_id=installation_id, workspace_uuid=workspaces.pop(),
                      api_base_url=api_base if isinstance(api_base, str) else None,
                      module_key=module.get("key") if isinstance(module.get("key"), str) else None,
                      principal=principal if isinstance(principal, str) and principal else None, claims=claims)


def _uuid(value: object) -> str:
    try:
        return normalize_uuid(value) if isinstance(value, str) else _bad()
    except InvalidInput:
        return _bad()


def _bad() -> str:
    raise AuthError("the invocation token names a malformed workspace id", code="invalid_token")

