"""Connect webhooks: verify, record durably (outbox), acknowledge, then enqueue."""
from __future__ import annotations

from flask import Blueprint, request

from strongroom.auth import authenticate_connect
from strongroom.connect.payloads import parse_connect_webhook
from strongroom.events import record_event

from .deps import acknowledge_event, ctx, signed_request

bp = Blueprint("webhooks", __name__)


@bp.post("/connect/webhooks")
def connect_webhook():
    body = request.get_data()  # 413 past MAX_CONTENT_LENGTH, before anything is parsed
    identity = authenticate_connect(ctx(), signed_request())
    envelope = parse_connect_webhook(body)
    event_id = record_event(ctx(), identity.tenant_id, source="connect",
                            delivery_id=request.headers.get("X-Request-UUID"),
                            event_key=envelope.event, data=envelope.data)
    return acknowledge_event(event_id)
