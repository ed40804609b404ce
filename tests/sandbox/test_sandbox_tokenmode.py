"""The sandbox's token mode and fake Forge platform, checked from the outside (plain HTTP, git, PyJWT, hmac)."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from flask import Flask, request
from werkzeug.serving import make_server

from sandbox import Sandbox


class Receiver:
    """Records every POST (raw body and headers) and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict]] = []
        app = Flask("receiver")

        @app.post("/<path:_path>")
        def hook(_path: str):
            self.received.append((request.get_data(), dict(request.headers)))
            return ("", 503) if _path.startswith("fail") else ("", 200)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/x"

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def ws(sandbox: Sandbox) -> Sandbox:
    sandbox.create_workspace("acme")
    sandbox.create_repository("acme", "widget", commits=2)
    sandbox.create_repository("acme", "gadget", commits=1)
    return sandbox


def api(sb: Sandbox, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{sb.api_url}/2.0/{path}", timeout=10, **kw)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def clone(sb: Sandbox, run_git, user: str, password: str, dest: Path, check: bool = True):
    import base64
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}
    return run_git("clone", "--mirror", f"{sb.web_url}/acme/widget.git", str(dest), env=env, check=check)


def test_workspace_access_token_is_bearer_for_rest_and_x_token_auth_for_git(ws, run_git, tmp_path):
    token = ws.tokenmode.issue_workspace_token("acme", expires_in=3600)
    assert api(ws, "GET", "repositories/acme", headers=bearer(token)).json()["size"] == 2
    assert api(ws, "GET", "repositories/acme", auth=("x-token-auth", token)).status_code == 401
    assert api(ws, "GET", "workspaces", headers=bearer(token)).status_code == 403
    clone(ws, run_git, "x-token-auth", token, tmp_path / "a")
    assert clone(ws, run_git, "someone", token, tmp_path / "b", check=False).returncode != 0
    ws.tokenmode.expire(token)
    assert api(ws, "GET", "repositories/acme", headers=bearer(token)).status_code == 401
    assert clone(ws, run_git, "x-token-auth", token, tmp_path / "c", check=False).returncode != 0


def test_api_token_is_basic_email_token_and_expires_within_a_year(ws, run_git, tmp_path):
    email, token = ws.tokenmode.issue_api_token("acme")
    assert api(ws, "GET", "repositories/acme", auth=(email, token)).status_code == 200
    assert api(ws, "GET", "repositories/acme", auth=("other@x.example", token)).status_code == 401
    assert api(ws, "GET", "repositories/acme", headers=bearer(token)).status_code == 401
    clone(ws, run_git, "x-bitbucket-api-token-auth", token, tmp_path / "a")
    ws.tokenmode.revoke(token)
    assert api(ws, "GET", "repositories/acme", auth=(email, token)).status_code == 401
    with pytest.raises(ValueError):
        ws.tokenmode.issue_api_token("acme", expires_in=400 * 86400)


def test_hook_crud_follows_the_webhook_subscription_rules(ws, receiver):
    token = ws.tokenmode.issue_workspace_token("acme")
    created = api(ws, "POST", "workspaces/acme/hooks", headers=bearer(token),
                  json={"url": receiver.url, "events": ["repo:push"], "secret": "s3cr3t", "description": "d"})
    assert created.status_code == 201 and created.headers["Location"]
    hook = created.json()
    assert hook["secret_set"] is True and "secret" not in hook and hook["subject_type"] == "workspace"
    path = f"workspaces/acme/hooks/{hook['uuid']}"
    kept = api(ws, "PUT", path, headers=bearer(token), json={"events": ["repo:push", "repo:created"]}).json()
    assert kept["secret_set"] is True and kept["events"] == ["repo:push", "repo:created"]
    assert api(ws, "PUT", path, headers=bearer(token), json={"secret": None}).json()["secret_set"] is False
    for bad in ({"url": "ftp://x", "events": ["repo:push"]}, {"url": receiver.url, "events": []},
                {"url": receiver.url, "events": ["repo:nope"]}, {"url": receiver.url, "events": ["repo:push"] * 2}):
        assert api(ws, "POST", "workspaces/acme/hooks", headers=bearer(token), json=bad).status_code == 400
    no_pr = ws.tokenmode.issue_workspace_token("acme", scopes=["repository", "webhook"])
    assert api(ws, "POST", "workspaces/acme/hooks", headers=bearer(no_pr),
               json={"url": receiver.url, "events": ["pullrequest:created"]}).status_code == 403
    not_owner = ws.tokenmode.issue_workspace_token("acme", owner=False)
    assert api(ws, "POST", "workspaces/acme/hooks", headers=bearer(not_owner),
               json={"url": receiver.url, "events": ["repo:push"]}).status_code == 403
    assert api(ws, "POST", "repositories/acme/widget/hooks", headers=bearer(not_owner),
               json={"url": receiver.url, "events": ["repo:push"]}).status_code == 201
    assert [h["uuid"] for h in api(ws, "GET", "workspaces/acme/hooks", headers=bearer(token)).json()["values"]] \
        == [hook["uuid"]]
    assert api(ws, "DELETE", path, headers=bearer(token)).status_code == 204
    assert api(ws, "GET", path, headers=bearer(token)).status_code == 404


def test_deliveries_are_unwrapped_and_hmac_signed(ws, receiver):
    token = ws.tokenmode.issue_workspace_token("acme")
    api(ws, "POST", "workspaces/acme/hooks", headers=bearer(token),
        json={"url": receiver.url, "events": ["repo:push"], "secret": "my-webhook-secret"})
    api(ws, "POST", "repositories/acme/gadget/hooks", headers=bearer(token),
        json={"url": receiver.url + "/unsigned", "events": ["repo:push"]})
    sha = ws.commit("acme", "widget", message="signed delivery")
    [(body, headers)] = receiver.received  # the gadget hook does not see widget's push
    expected = "sha256=" + hmac.new(b"my-webhook-secret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == expected and headers["X-Event-Key"] == "repo:push"
    payload = json.loads(body)
    assert "event" not in payload and payload["push"]["changes"][0]["new"]["target"]["hash"] == sha
    ws.commit("acme", "gadget", message="unsigned delivery")
    assert len(receiver.received) == 3 and "X-Hub-Signature" not in receiver.received[2][1]


def test_forge_tokens_work_on_rest_and_git_but_not_on_hooks(ws, run_git, tmp_path, receiver):
    forge = ws.forge
    forge.install("acme", receiver.url.rsplit("/hooks", 1)[0])
    assert receiver.received and json.loads(receiver.received[0][0])["eventType"] == "avi:forge:installed:app"
    token = forge.system_token("acme")
    assert api(ws, "GET", "repositories/acme/widget", headers=bearer(token)).status_code == 200
    assert api(ws, "GET", "workspaces/acme/hooks", headers=bearer(token)).status_code == 403
    clone(ws, run_git, "x-token-auth", token, tmp_path / "a")
    forge.uninstall("acme")
    assert api(ws, "GET", "repositories/acme/widget", headers=bearer(token)).status_code == 401


def test_invocation_tokens_verify_against_the_published_jwks(ws, receiver):
    forge = ws.forge
    forge.install("acme", receiver.url.rsplit("/hooks", 1)[0])
    body, headers = receiver.received[-1]
    token = headers["Authorization"].split(" ", 1)[1]
    client = jwt.PyJWKClient(forge.jwks_url)
    claims = jwt.decode(token, client.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                        audience=forge.app_id, issuer="forge/invocation-token")
    assert claims["exp"] - claims["iat"] == 25 and claims["app"]["installation"]["contexts"][0]["workspaceId"] \
        == ws.workspace("acme").uuid.strip("{}")
    assert jwt.decode(headers["X-Forge-Oauth-System"], options={"verify_signature": False})["exp"] > time.time() + 3600


def test_product_events_follow_changes_with_retries_and_envelopes(ws, receiver):
    forge = ws.forge
    forge.retry_interval = 0.05
    forge.install("acme", receiver.url.rsplit("/hooks", 1)[0])
    forge.envelope = "payload"
    ws.commit("acme", "widget", message="forge event")
    forge.wait_idle()
    event = json.loads(receiver.received[-1][0])["payload"]
    assert event["eventType"] == "avi:bitbucket:push:repository" and event["push"]["ref"] == "refs/heads/main"
    assert event["repository"]["uuid"] == ws.repository("acme", "widget").uuid
    calls_before = len(forge.calls)
    forge.install_of("acme").routes["events"] = "/fail"  # the remote answers 503: redelivered 4 times
    ws.delete_repository("acme", "gadget")
    forge.wait_idle()
    assert len(forge.calls) == calls_before + 1 and forge.calls[-1].statuses == [503] * 5
    retries = [json.loads(body)["payload"]["retryContext"]["retryCount"] for body, _ in receiver.received[-4:]]
    assert retries == [1, 2, 3, 4]
