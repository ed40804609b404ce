"""Fixtures for testing the sandbox on its own: a tiny Connect app written here (no Strongroom code).

The app verifies what the host sends with PyJWT and `atlassian_jwt`, records every request, and can
be told how to answer. It lives under a base path (`/app`) so qsh path-stripping is exercised.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from atlassian_jwt.url_utils import hash_url
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

# `tests/sandbox/` has no __init__.py, so with `tests/` on sys.path it would be importable as a namespace
# package called `sandbox`; a regular package anywhere on sys.path wins over namespace portions.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from sandbox import Sandbox  # noqa: E402

APP_KEY = "test-backup"
DEFAULT_SCOPES = ["account", "repository", "repository:write", "pullrequest", "webhook"]
DEFAULT_HOOKS = ["repo:push", "repo:created", "repo:updated", "repo:deleted", "repo:transfer"]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict
    claims: dict | None  # verified claims, or None when no/invalid JWT
    error: str | None  # why verification failed


@dataclass
class FakeApp:
    """A minimal Connect app: descriptor, lifecycle and webhook endpoints."""

    scopes: list[str] | None = field(default_factory=lambda: list(DEFAULT_SCOPES))
    hooks: list[str] = field(default_factory=lambda: list(DEFAULT_HOOKS))
    extra: dict = field(default_factory=dict)  # merged into the descriptor
    secrets: dict[str, str] = field(default_factory=dict)  # clientKey -> sharedSecret
    received: list[Received] = field(default_factory=list)
    install_status: int = 204
    webhook_statuses: list[int] = field(default_factory=list)  # answers to pop; then 200
    client_key: str | None = None
    url: str = ""
    sandbox: Sandbox | None = None

    # --- server -------------------------------------------------------------------------
    def start(self) -> "FakeApp":
        flask_app = Flask("fake-connect-app")
        flask_app.add_url_rule("/app/atlassian-connect.json", "descriptor", self._descriptor)
        flask_app.add_url_rule("/app/lifecycle/<event>", "lifecycle", self._lifecycle, methods=["POST"])
        flask_app.add_url_rule("/app/webhooks", "webhooks", self._webhook, methods=["POST"])
        self._server = make_server("127.0.0.1", 0, flask_app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return self.url + "/app"

    @property
    def descriptor_url(self) -> str:
        return self.base_url + "/atlassian-connect.json"

    def descriptor(self) -> dict:
        d = {"key": APP_KEY, "name": "Test backup", "description": "Backs things up in tests.",
             "baseUrl": self.base_url, "authentication": {"type": "jwt"},
             "lifecycle": {"installed": "/lifecycle/installed", "uninstalled": "/lifecycle/uninstalled"},
             "contexts": ["account"],
             "modules": {"webhooks": [{"event": e, "url": "/webhooks"} for e in self.hooks]}}
        if self.scopes is not None:
            d["scopes"] = self.scopes
        d.update(self.extra)
        return d

    # --- handlers -----------------------------------------------------------------------
    def _descriptor(self) -> Response:
        return Response(json.dumps(self.descriptor()), mimetype="application/json")

    def _verify(self, secret: str | None, client_key: str, relative: str) -> tuple[dict | None, str | None]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("JWT "):
            return None, "no JWT"
        if secret is None:
            return None, "no secret to verify with"
        try:
            claims = jwt.decode(auth[4:], secret, algorithms=["HS256"], audience=client_key)
        except jwt.PyJWTError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if claims.get("qsh") != hash_url(request.method, relative):
            return None, "qsh mismatch"
        if claims.get("iss") != client_key:
            return None, "iss is not the clientKey"
        return claims, None

    def _lifecycle(self, event: str) -> Response:
        body = request.get_json()
        ck = body["clientKey"]
        known = self.secrets.get(ck)
        # ACE's rule: a known tenant must sign with the stored secret; a new one with the new secret.
        secret = known if known is not None else body.get("sharedSecret")
        claims, error = self._verify(secret, ck, f"/lifecycle/{event}")
        self.received.append(Received(request.path, dict(request.headers), body, claims, error))
        if event == "installed" and 200 <= self.install_status < 300:
            if known is None or claims is not None:
                self.secrets[ck] = body["sharedSecret"]
                self.client_key = ck
        return Response(status=self.install_status if event == "installed" else 204)

    def _webhook(self) -> Response:
        body = request.get_json()
        ck = self.client_key or ""
        claims, error = self._verify(self.secrets.get(ck), ck, "/webhooks")
        self.received.append(Received(request.path, dict(request.headers), body, claims, error))
        status = self.webhook_statuses.pop(0) if self.webhook_statuses else 200
        return Response(status=status)

    # --- what the app received ----------------------------------------------------------
    def lifecycle_calls(self, event: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/app/lifecycle/{event}"]

    def webhooks(self, event: str | None = None) -> list[Received]:
        return [r for r in self.received if r.path == "/app/webhooks"
                and (event is None or r.headers.get("X-Event-Key") == event)]

    # --- calling the host as the app ----------------------------------------------------
    def token(self, method: str, relative_url: str | None, *, secret: str | None = None, ttl: int = 180,
              **overrides: Any) -> str:
        """An app JWT: iss = app key, sub = clientKey, qsh over `relative_url` (None: no qsh)."""
        now = int(time.time())
        claims = {"iss": APP_KEY, "sub": self.client_key, "iat": now, "exp": now + ttl}
        if relative_url is not None:
            claims["qsh"] = hash_url(method, relative_url)
        claims.update(overrides)
        return jwt.encode(claims, secret or self.secrets[self.client_key], algorithm="HS256")

    def api(self, method: str, path: str, *, params: Any = None, json_body: Any = None,
            qsh_path: str | None = None, **overrides: Any) -> requests.Response:
        """Call the sandbox REST API with a Connect JWT computed over the exact wire path and query."""
        prepared = requests.Request(method, self.sandbox.api_url + path, params=params, json=json_body).prepare()
        token = self.token(method, qsh_path or prepared.path_url, **overrides)
        prepared.headers["Authorization"] = f"JWT {token}"
        return requests.Session().send(prepared, timeout=10)

    def exchange(self, **form: str) -> requests.Response:
        """The JWT grant against the sandbox's token endpoint."""
        data = {"grant_type": "urn:bitbucket:oauth2:jwt", **form}
        token = self.token("POST", "/site/oauth2/access_token")
        return requests.post(self.sandbox.web_url + "/site/oauth2/access_token", data=data,
                             headers={"Authorization": f"JWT {token}"}, timeout=10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    sb = Sandbox(tmp_path / "sandbox").start()
    yield sb
    sb.stop()


@pytest.fixture
def app(sandbox: Sandbox) -> FakeApp:
    fake = FakeApp(sandbox=sandbox).start()
    yield fake
    fake.stop()


@pytest.fixture
def make_app():
    """Start extra fake apps (not bound to a sandbox); stopped after the test."""
    started: list[FakeApp] = []

    def make(**kwargs: Any) -> FakeApp:
        fake = FakeApp(**kwargs).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def installed(sandbox: Sandbox, app: FakeApp) -> FakeApp:
    """Workspace `acme` with repository `widget` (3 commits), the fake app installed."""
    sandbox.create_workspace("acme", "Acme Inc.")
    sandbox.create_repository("acme", "widget", commits=3)
    sandbox.install("acme", app.descriptor_url)
    return app


def git(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> Any:
    """Run the real git client isolated from the user's configuration."""
    import os
    import subprocess
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
                     "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false"})
    full_env.update(env or {})
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture
def run_git() -> Any:
    return git
