"""Authenticating requests that claim to come from the host (one function for every front)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from sqlalchemy import select

from .connect.jwt import extract_token, read_unverified_claims, verify_request_token
from .context import Context
from .errors import AuthError
from .store.models import Installation, Tenant


@dataclass(frozen=True)
class SignedRequest:
    """What JWT verification needs from an incoming HTTP request."""

    method: str
    path: str
    query: str = ""
    authorization: str | None = field(default=None, repr=False)
    query_args: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ConnectIdentity:
    installation_id: str
    tenant_id: str
    client_key: str
    claims: dict


def base_path(ctx: Context) -> str:
    """The path part of the add-on's base URL; qsh is computed relative to it."""
    return urlsplit(ctx.settings.base_url).path.rstrip("/")


def verify_with_secret(ctx: Context, req: SignedRequest, token: str, secret: str, client_key: str) -> dict:
    """Verify a host JWT for this exact request with a given secret (HS256, qsh, exp, aud)."""
    return verify_request_token(token, secret, method=req.method, path=req.path, query=req.query,
                                base_path=base_path(ctx), audience=client_key)


def authenticate_connect(ctx: Context, req: SignedRequest, *, allow_inactive: bool = False) -> ConnectIdentity:
    """Verify `Authorization: JWT` (or ?jwt=) against the issuing installation's stored secret."""
    token = extract_token(req.authorization, req.query_args)
    if not token:
        raise AuthError("a host-signed JWT is required", code="missing_token")
    issuer = read_unverified_claims(token)["iss"]
    with ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == issuer)).first()
        if inst is None or not inst.secret_enc:
            raise AuthError("unknown installation", code="unknown_installation")
        if inst.status != "active" and not allow_inactive:
            raise AuthError("this installation is not active", code="installation_inactive")
        secret = ctx.box.decrypt(inst.secret_enc)
        ident = (inst.id, inst.tenant_id, issuer)
    claims = verify_with_secret(ctx, req, token, secret, issuer)
    return ConnectIdentity(installation_id=ident[0], tenant_id=ident[1], client_key=ident[2], claims=claims)


def tenant_of(ctx: Context, tenant_id: str) -> Tenant:
    with ctx.db.session() as s:
        tenant = s.get(Tenant, tenant_id)
        if tenant is None:
            raise AuthError("unknown tenant")
        s.expunge(tenant)
        return tenant
