"""JSON endpoints the settings panel needs beyond the core API: host status, overview, session renewal."""
from __future__ import annotations

from flask import Blueprint, g, jsonify

from strongroom.panel import renew_session, workspace_overview
from strongroom.sessions import SESSION_SECONDS
from strongroom.status import host_status

from .auth import authenticate_api
from .deps import ctx

bp = Blueprint("panel_api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api)


@bp.get("/status")
def status():
    return jsonify(host_status(ctx(), g.tenant_id))


@bp.get("/overview")
def overview():
    return jsonify(workspace_overview(ctx(), g.tenant_id))


@bp.post("/session")
def session():
    token, expires_at = renew_session(ctx(), g.tenant_id, g.actor)
    return jsonify({"token": token, "expires_at": expires_at, "expires_in": SESSION_SECONDS})
