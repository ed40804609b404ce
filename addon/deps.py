"""Request-scoped access to the deployment context and the dispatcher."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import current_app, jsonify, request

from strongroom.auth import SignedRequest
from strongroom.context import Context
from strongroom.ports import Dispatcher


def ctx() -> Context:
    return current_app.extensions["strongroom"]


def dispatcher() -> Dispatcher:
    return current_app.extensions["strongroom.dispatcher"]


def signed_request() -> SignedRequest:
    """The parts of the current request that a host JWT signs (path relative to the server root)."""
    query = request.query_string.decode("latin-1")
    # qsh covers the path as it was sent; Flask's request.path is already percent-decoded.
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    path = urlsplit(raw).path if raw else request.path
    return SignedRequest(method=request.method, path=path, query=query,
                         authorization=request.headers.get("Authorization"),
                         query_args=request.args.to_dict(flat=True))


def acknowledge_event(event_id: str | None):
    """The answer to a recorded webhook delivery; enqueues its processing after the commit.

    A broker outage only delays the work: the event is in the outbox and the janitor re-dispatches it.
    """
    if event_id is None:
        return jsonify({"status": "duplicate"}), 200
    try:
        dispatcher().process_event(event_id)
    except Exception:
        logging.getLogger(__name__).exception("could not enqueue event %s; it stays in the outbox", event_id)
    return jsonify({"status": "accepted", "event": event_id}), 202
