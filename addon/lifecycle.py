"""Connect lifecycle callbacks: installed and uninstalled."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from strongroom.install import handle_installed, handle_uninstalled

from .deps import ctx, dispatcher, signed_request

bp = Blueprint("lifecycle", __name__)
log = logging.getLogger(__name__)


@bp.post("/connect/lifecycle/installed")
def installed():
    result = handle_installed(ctx(), signed_request(), request.get_data())
    if result.job_id:
        try:
            dispatcher().run_job(result.job_id)
        except Exception:  # the beat janitor re-dispatches queued jobs
            log.exception("could not enqueue the initial backup; the janitor will retry")
    return jsonify({"status": "installed", "job": result.job_id}), 200


@bp.post("/connect/lifecycle/uninstalled")
def uninstalled():
    handle_uninstalled(ctx(), signed_request(), request.get_data())
    return jsonify({"status": "uninstalled"}), 200
