"""REST views added for token mode and Forge (kept out of rest_views.py so each concern stays small)."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from flask import Flask, Response, g

from .query import ApiError
from .rest import NOT_ACCESSIBLE

if TYPE_CHECKING:  # pragma: no cover
    from .rest import Api


def register_extension_views(app: Flask, api: "Api") -> None:
    """Webhook CRUD (token mode) and workspace permissions (Forge's admin check)."""
    from .hooks import register_hook_views

    register_hook_views(app, api)
    register_permission_views(app, api)


def register_permission_views(app: Flask, api: "Api") -> None:
    """`GET /2.0/workspaces/{ws}/permissions` (Forge-allowed; not for access tokens, F12)."""
    sb = api.sb

    @app.get("/2.0/workspaces/<ws>/permissions")
    def workspace_permissions(ws: str) -> Response:
        if g.principal.kind in ("workspace-token", "access-token", "connect-jwt"):
            raise ApiError(403, NOT_ACCESSIBLE)
        w = api.own_workspace(ws)
        members = sb.forge.members.get(w.uuid) or {w.actor.account_id: "owner"}
        values = [{"type": "workspace_membership", "permission": perm,
                   "user": {"type": "user", "account_id": account,
                            "uuid": "{%s}" % uuid.uuid5(uuid.NAMESPACE_OID, account)},
                   "workspace": sb.renderer.workspace(w, full=False)} for account, perm in members.items()]
        return api.listing(values)
