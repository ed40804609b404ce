"""Token-mode webhooks: HMAC-verified on the raw body, recorded in the outbox, acknowledged, then enqueued."""
from __future__ import annotations

from flask import Blueprint, request

from strongroom.host.webhook_signature import SIGNATURE_HEADER
from strongroom.tokenmode import receive_webhook

from .deps import acknowledge_event, ctx

bp = Blueprint("hooks", __name__)


@bp.post("/hooks/bitbucket/<workspace_uuid>")
def bitbucket_hook(workspace_uuid: str):
    body = request.get_data()  # the raw bytes: the signature covers exactly these
    _, event_id = receive_webhook(ctx(), workspace_uuid, body, signature=request.headers.get(SIGNATURE_HEADER),
                                  event_key=request.headers.get("X-Event-Key"),
                                  delivery_id=request.headers.get("X-Request-UUID"))
    return acknowledge_event(event_id)
