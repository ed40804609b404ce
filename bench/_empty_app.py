"""The baseline for bench_webhooks: an empty Flask endpoint at the webhook's path (reads the body, no work)."""
from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/connect/webhooks")
def empty_webhook():
    """Accept anything: the cost of Flask + gunicorn alone."""
    request.get_data()
    return jsonify({"status": "accepted"}), 202


@app.get("/atlassian-connect.json")
def probe():
    """Readiness probe for the bench stack."""
    return jsonify({}), 200
