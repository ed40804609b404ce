"""Panel session tokens: short-lived, server-signed, bound to one tenant and one user.

The settings panel runs in a third-party iframe where cookies are blocked, so its scripts carry
this token as `Authorization: Bearer`. It is minted only after the host's JWT (or an operator
key) was verified, and it is signed with a key derived from STRONGROOM_SECRET_KEY.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from .config import Settings
from .errors import AuthError
from .store.crypto import derive_key

SESSION_SECONDS = 15 * 60
_ISSUER = "strongroom-panel"


@dataclass(frozen=True)
class PanelSession:
    tenant_id: str
    user: str
    expires_at: int


def _keys(settings: Settings) -> list[bytes]:
    return [derive_key(k, "panel-session-v1") for k in settings.secret_keys]


def mint_session(settings: Settings, tenant_id: str, user: str, *, now: float | None = None) -> tuple[str, int]:
    """A signed session token and its expiry (epoch seconds)."""
    issued = int(now if now is not None else time.time())
    claims = {"iss": _ISSUER, "sub": tenant_id, "usr": user, "iat": issued, "exp": issued + SESSION_SECONDS}
    return jwt.encode(claims, _keys(settings)[0], algorithm="HS256"), claims["exp"]


def verify_session(settings: Settings, token: str) -> PanelSession:
    """Verify a session token (any configured key, HS256 only); AuthError if invalid or expired."""
    for key in _keys(settings):
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], issuer=_ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the panel session expired; reload the page", code="session_expired") from exc
        except jwt.InvalidTokenError:
            continue
        return PanelSession(tenant_id=claims["sub"], user=str(claims.get("usr", "")), expires_at=claims["exp"])
    raise AuthError("invalid panel session token", code="invalid_session")


def looks_like_session(token: str) -> bool:
    return token.count(".") == 2
