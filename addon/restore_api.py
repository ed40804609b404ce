"""Restores, recoveries, bundles, drills and the audit log under /api/v1 (same auth as the rest of the API)."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from strongroom import audit, drills, export, recovery, restore

from .api import json_body, paged, paging
from .auth import authenticate_api
from .deps import ctx, dispatcher

bp = Blueprint("restore_api", __name__, url_prefix="/api/v1")
bp.before_request(authenticate_api)


def _planned(answer: dict):
    """200 for a plan only (dry run), 202 when a job was started."""
    return jsonify(answer), (202 if answer.get("job") else 200)


@bp.post("/repositories/<uuid>/restores")
def restore_repository(uuid: str):
    return _planned(restore.request_restore(ctx(), g.tenant_id, uuid, json_body(), actor=g.actor,
                                            dispatcher=dispatcher()))


@bp.post("/recoveries")
def recover_workspace():
    return _planned(recovery.request_recovery(ctx(), g.tenant_id, json_body(), actor=g.actor,
                                              dispatcher=dispatcher()))


@bp.post("/repositories/<uuid>/drills")
def drill_repository(uuid: str):
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        body = json_body()  # raises the API's usual 400
    return jsonify(drills.request_drill(ctx(), g.tenant_id, uuid, body, actor=g.actor, dispatcher=dispatcher())), 202


@bp.get("/repositories/<uuid>/snapshots/<snapshot_id>/bundle")
def snapshot_bundle(uuid: str, snapshot_id: str):
    download = export.snapshot_bundle(ctx(), g.tenant_id, uuid, snapshot_id, actor=g.actor)
    headers = {"Content-Disposition": f'attachment; filename="{download.filename}"',
               "Content-Length": str(download.size), "Cache-Control": "no-store"}
    return Response(download.chunks(), mimetype="application/x-git-bundle", headers=headers,
                    direct_passthrough=True)


@bp.get("/audit")
def audit_log():
    page, pagelen = paging()
    values, total = audit.audit_log(ctx(), g.tenant_id, action=request.args.get("action"), page=page,
                                    pagelen=pagelen)
    return paged(values, total, page, pagelen)
