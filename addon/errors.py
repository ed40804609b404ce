"""Every error leaves as JSON: {"error": {"code", "message"}} with a fitting status."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from strongroom.errors import StrongroomError, TransientError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register(app: Flask) -> None:
    @app.errorhandler(StrongroomError)
    def _domain(exc: StrongroomError):
        status = exc.status if 400 <= exc.status < 600 else 500
        if isinstance(exc, TransientError) and status < 500 and exc.code != "rate_limited":
            status = 503
        return error_response(status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
