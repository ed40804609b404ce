"""Token-mode webhooks: HMAC-verified on the raw body, recorded in the outbox, acknowledged, then enqueued."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from strongroom.host.webhook_signature import SIGNATURE_HEADER
from strongroom.tokenmode import receive_webhook

from .deps import ctx, dispatcher

bp = Blueprint("hooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/hooks/bitbucket/<workspace_uuid>")
def bitbucket_hook(workspace_uuid: str):
    body = request.get_data()  # the raw bytes: the signature covers exactly these
    _, event_id = receive_webhook(ctx(), workspace_uuid, body, signature=request.headers.get(SIGNATURE_HEADER),
                                  event_key=request.headers.get("X-Event-Key"),
                                  delivery_id=request.headers.get("X-Request-UUID"))
    if event_id is None:
        return jsonify({"status": "duplicate"}), 200
    try:
        dispatcher().process_event(event_id)
    except Exception:  # recorded already: the outbox drain picks it up
        log.exception("could not enqueue event %s; it stays in the outbox", event_id)
    return jsonify({"status": "accepted", "event": event_id}), 202
