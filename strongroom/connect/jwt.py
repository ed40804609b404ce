"""Connect JWTs: find the token, read it unverified, verify it, and sign outgoing ones.

HS256 is the only algorithm ever accepted or produced; the allow-list is fixed here and never
derived from the token's own header.
"""
from __future__ import annotations

import hmac
import time
from typing import Any, Mapping

import jwt as pyjwt

from ..errors import AuthError, InvalidInput
from .qsh import query_string_hash

ALGORITHM = "HS256"
_RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "exp", "qsh"})
# Claim checks are done here (with an injectable clock); PyJWT only checks the signature.
_SIGNATURE_ONLY = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def extract_token(authorization_header: str | None, query_args: Mapping[str, str]) -> str | None:
    """Return the JWT from ``Authorization: JWT <token>`` or the ``jwt`` query parameter, if any."""
    if authorization_header:
        scheme, _, credentials = authorization_header.strip().partition(" ")
        # Bitbucket documents the scheme as "JWT"; be lenient on receipt like atlassian-jwt.
        if scheme.lower() == "jwt" and credentials.strip():
            return credentials.strip()
    token = query_args.get("jwt")
    if isinstance(token, str) and token.strip():
        return token.strip()
    return None


def read_unverified_claims(token: str) -> dict:
    """Return the claims without checking the signature (only to pick the tenant's secret)."""
    _check_header(token)
    try:
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError as exc:
        raise AuthError("malformed token", code="invalid_token") from exc
    if not isinstance(claims, dict):
        raise AuthError("token claims are not an object", code="invalid_token")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise AuthError("token has no issuer", code="invalid_token")
    return claims


def verify_request_token(
    token: str,
    secret: str,
    *,
    method: str,
    path: str,
    query: str = "",
    base_path: str = "",
    audience: str | None = None,
    require_qsh: bool = True,
    leeway: int = 30,
    now: float | None = None,
) -> dict:
    """Verify an incoming request token (signature, exp, iat, aud, qsh) and return its claims."""
    claims = _decode_verified(token, secret)
    current = time.time() if now is None else now
    _check_times(claims, current, leeway)
    _check_audience(claims, audience)
    _check_qsh(claims, query_string_hash(method, path, query, base_path), require_qsh)
    return claims


def sign_request_token(
    secret: str,
    *,
    issuer: str,
    method: str,
    path: str,
    query: str = "",
    base_path: str = "",
    subject: str | None = None,
    audience: str | None = None,
    lifetime: int = 180,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Mint an HS256 request token with iss, iat, exp, qsh (and sub/aud when given)."""
    if not secret:
        raise InvalidInput("cannot sign a token with an empty secret")
    if not issuer:
        raise InvalidInput("a token needs an issuer")
    clashing = _RESERVED_CLAIMS.intersection(extra_claims or {})
    if clashing:
        raise InvalidInput(f"extra_claims may not override {sorted(clashing)}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": issuer}
    if subject is not None:
        claims["sub"] = subject
    if audience is not None:
        claims["aud"] = audience
    claims.update(iat=issued, exp=issued + lifetime, qsh=query_string_hash(method, path, query, base_path))
    claims.update(extra_claims or {})
    return pyjwt.encode(claims, secret, algorithm=ALGORITHM)


def _check_header(token: str) -> None:
    # Three non-empty segments: an HS256 token always has a payload and a signature.
    if not isinstance(token, str) or token.count(".") != 2 or not all(token.split(".")):
        raise AuthError("malformed token", code="invalid_token")
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError as exc:
        raise AuthError("malformed token header", code="invalid_token") from exc
    # Checked before anything else looks at the token: "none", RS*/ES* and friends never pass.
    if header.get("alg") != ALGORITHM:
        raise AuthError("token algorithm must be HS256", code="invalid_token")


def _decode_verified(token: str, secret: str) -> dict:
    _check_header(token)
    if not secret:
        raise AuthError("no secret to verify the token with", code="invalid_signature")
    try:
        claims = pyjwt.decode(token, secret, algorithms=[ALGORITHM], options=_SIGNATURE_ONLY)
    except pyjwt.InvalidSignatureError as exc:
        raise AuthError("token signature does not verify", code="invalid_signature") from exc
    except pyjwt.PyJWTError as exc:
        raise AuthError("malformed token", code="invalid_token") from exc
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise AuthError("token has no issuer", code="invalid_token")
    return claims


def _check_times(claims: dict, now: float, leeway: int) -> None:
    exp, iat = _numeric(claims, "exp"), _numeric(claims, "iat")
    if exp <= now - leeway:
        raise AuthError("token has expired", code="token_expired")
    if iat > now + leeway:
        raise AuthError("token was issued in the future", code="token_not_yet_valid")
    if "nbf" in claims and _numeric(claims, "nbf") > now + leeway:
        raise AuthError("token is not valid yet", code="token_not_yet_valid")


def _numeric(claims: dict, name: str) -> float:
    value = claims.get(name)
    # bool is an int subclass; "true" is not a timestamp.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuthError(f"token claim {name!r} is missing or not a number", code="invalid_token")
    return float(value)


def _check_audience(claims: dict, audience: str | None) -> None:
    # Bitbucket sends aud = clientKey; a caller that knows the clientKey passes it as audience.
    if audience is None or "aud" not in claims:
        return
    aud = claims["aud"]
    accepted = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if audience not in accepted:
        raise AuthError("token audience does not match", code="invalid_audience")


def _check_qsh(claims: dict, expected: str, require_qsh: bool) -> None:
    qsh = claims.get("qsh")
    if qsh is None:
        if require_qsh:
            raise AuthError("token has no qsh claim", code="missing_qsh")
        return
    # A qsh that is present is always checked, even where it is not required.
    if not isinstance(qsh, str) or not hmac.compare_digest(qsh.encode("utf-8"), expected.encode("ascii")):
        raise AuthError("token qsh does not match the request", code="qsh_mismatch")
