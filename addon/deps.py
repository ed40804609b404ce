"""Request-scoped access to the deployment context and the dispatcher."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request

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
