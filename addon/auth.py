"""Authentication of /api/v1 requests: host JWT, panel session token or operator key."""
from __future__ import annotations

from flask import g, request

from strongroom.auth import authenticate_connect
from strongroom.errors import AuthError
from strongroom.operators import authenticate_operator_key
from strongroom.sessions import looks_like_session, verify_session

from .deps import ctx, signed_request


def authenticate_api() -> None:
    """Set g.tenant_id and g.actor for this request, or raise AuthError (never optional)."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "jwt" or (not header and "jwt" in request.args):
        ident = authenticate_connect(ctx(), signed_request())
        g.tenant_id, g.actor = ident.tenant_id, f"connect:{ident.claims.get('sub') or ident.client_key}"
        return
    if scheme == "bearer" and credential:
        credential = credential.strip()
        if looks_like_session(credential):
            session = verify_session(ctx().settings, credential)
            g.tenant_id, g.actor = session.tenant_id, session.user
            return
        tenant_id, key_id = authenticate_operator_key(ctx(), credential)
        g.tenant_id, g.actor = tenant_id, f"operator-key:{key_id}"
        return
    raise AuthError("send 'Authorization: JWT <host token>' or 'Authorization: Bearer <session token or operator key>'")
