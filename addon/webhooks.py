"""Connect webhooks: verify, record durably (outbox), acknowledge, then enqueue."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from strongroom.auth import authenticate_connect
from strongroom.connect.payloads import parse_connect_webhook
from strongroom.events import record_event

from .deps import ctx, dispatcher, signed_request

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/connect/webhooks")
def connect_webhook():
    body = request.get_data()  # 413 past MAX_CONTENT_LENGTH, before anything is parsed
    identity = authenticate_connect(ctx(), signed_request())
    envelope = parse_connect_webhook(body)
    event_id = record_event(ctx(), identity.tenant_id, source="connect",
                            delivery_id=request.headers.get("X-Request-UUID"),
                            event_key=envelope.event, data=envelope.data)
    if event_id is None:
        return jsonify({"status": "duplicate"}), 200
    try:
        dispatcher().process_event(event_id)
    except Exception:  # recorded already: the outbox drain picks it up
        log.exception("could not enqueue event %s; it stays in the outbox", event_id)
    return jsonify({"status": "accepted", "event": event_id}), 202
