"""The descriptor and the health check."""
from __future__ import annotations


from flask import Blueprint, jsonify

import descriptor
from strongroom.health import check_health

from .deps import ctx

bp = Blueprint("site", __name__)


@bp.get("/atlassian-connect.json")
def connect_descriptor():
    settings = ctx().settings
    return jsonify(descriptor.render(settings.base_url, settings.app_key))


@bp.get("/healthz")
def healthz():
    report = check_health(ctx())
    return jsonify(report), (200 if report["ok"] else 503)
