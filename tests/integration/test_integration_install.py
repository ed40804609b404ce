"""Install, uninstall and JWT verification over real HTTP against the sandbox host."""
from __future__ import annotations

import json
import time

import jwt
import pytest
from atlassian_jwt.url_utils import hash_url
import requests
from sqlalchemy import func, select

import descriptor
from harness import HostSigner, wait_for
from strongroom.store.models import Event, Installation, Repository, Tenant

pytestmark = pytest.mark.integration


def _counts(ctx, *workspace_uuids: str) -> tuple:
    """Tenants and installations overall, and repositories and events of the named workspaces.

    (Other tests' workspaces may still be inventoried in the background of the shared stack.)"""
    with ctx.db.session() as s:
        tenants = s.scalar(select(func.count()).select_from(Tenant))
        installs = s.scalar(select(func.count()).select_from(Installation))
        ids = list(s.scalars(select(Tenant.id).where(Tenant.workspace_uuid.in_(workspace_uuids))))
        repos = s.scalar(select(func.count()).select_from(Repository).where(Repository.tenant_id.in_(ids)))
        events = s.scalar(select(func.count()).select_from(Event).where(Event.tenant_id.in_(ids)))
        return tenants, installs, repos, events


def _secret_of(ctx, client_key: str) -> str:
    with ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == client_key)).one()
        return ctx.box.decrypt(inst.secret_enc)


def test_every_descriptor_url_is_served_by_a_route(stack):
    body = requests.get(f"{stack.base_url}/atlassian-connect.json", timeout=10).json()
    assert body["baseUrl"] == stack.base_url and body["authentication"] == {"type": "jwt"}
    assert {w["event"] for w in body["modules"]["webhooks"]} >= {
        "repo:push", "repo:created", "repo:deleted", "repo:updated", "repo:transfer", "repo:imported"}
    from addon import create_app

    adapter = create_app(stack.settings, ctx=stack.ctx, dispatcher=object()).url_map.bind("localhost")
    for url in descriptor.urls(body):
        path = url.split("?", 1)[0]
        method = "POST" if path.startswith(("/connect/lifecycle", "/connect/webhooks")) else "GET"
        endpoint, _ = adapter.match(path, method=method)
        assert endpoint, url


def test_installation_endpoint_answers_with_the_host_jwt(install_workspace, stack):
    ws = install_workspace(repos=1)
    response = ws.api.get("/api/v1/installation")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == "connect" and body["client_key"] == ws.client_key
    assert body["workspace"] == {"uuid": ws.uuid, "slug": ws.slug, "name": f"Workspace {ws.slug}"}
    assert body["status"] == "active" and body["scope_mode"] == "all" and body["installed_at"]
    assert _secret_of(stack.ctx, ws.client_key) == ws.shared_secret


def test_shared_secret_is_encrypted_at_rest(install_workspace, stack):
    ws = install_workspace(repos=1)
    with stack.ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == ws.client_key)).one()
        assert ws.shared_secret not in (inst.secret_enc or "")
        assert ws.shared_secret not in inst.details_json


@pytest.mark.parametrize("case", ["no-token", "wrong-secret", "alg-none", "expired", "tampered-query",
                                  "missing-qsh", "other-tenant-secret"])
def test_bad_tokens_are_refused_with_json_errors(install_workspace, stack, case):
    ws = install_workspace(repos=0)
    other = install_workspace(repos=0)
    now = int(time.time())
    path = "/api/v1/repositories"
    good = {"iss": ws.client_key, "aud": ws.client_key, "iat": now, "exp": now + 60,
            "qsh": hash_url("GET", path)}
    url = stack.base_url + path
    if case == "no-token":
        headers = {}
    elif case == "wrong-secret":
        headers = {"Authorization": "JWT " + jwt.encode(good, "not-the-secret", algorithm="HS256")}
    elif case == "alg-none":
        headers = {"Authorization": "JWT " + jwt.encode(good, None, algorithm="none")}
    elif case == "expired":
        claims = dict(good, iat=now - 7200, exp=now - 3600)
        headers = {"Authorization": "JWT " + jwt.encode(claims, ws.shared_secret, algorithm="HS256")}
    elif case == "tampered-query":
        headers = {"Authorization": "JWT " + jwt.encode(good, ws.shared_secret, algorithm="HS256")}
        url += "?q=secret"
    elif case == "missing-qsh":
        claims = {k: v for k, v in good.items() if k != "qsh"}
        headers = {"Authorization": "JWT " + jwt.encode(claims, ws.shared_secret, algorithm="HS256")}
    else:  # signed with another installation's secret but claiming this one
        headers = {"Authorization": "JWT " + jwt.encode(good, other.shared_secret, algorithm="HS256")}
    before = _counts(stack.ctx, ws.uuid, other.uuid)
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert set(response.json()["error"]) == {"code", "message"}
    assert _counts(stack.ctx, ws.uuid, other.uuid) == before


def test_forged_reinstall_cannot_replace_the_secret(install_workspace, stack):
    ws = install_workspace(repos=0)
    before = _counts(stack.ctx, ws.uuid)
    response = stack.sandbox.post_lifecycle(ws.slug, "installed", secret="forged-secret",
                                            payload_overrides={"sharedSecret": "forged-secret"})
    assert response.status_code == 401
    unsigned = stack.sandbox.post_lifecycle(ws.slug, "installed", unsigned=True,
                                            payload_overrides={"sharedSecret": "forged-secret"})
    assert unsigned.status_code == 401
    assert _secret_of(stack.ctx, ws.client_key) == ws.shared_secret
    assert _counts(stack.ctx, ws.uuid) == before
    assert ws.api.get("/api/v1/installation").status_code == 200


def _first_install(stack, ws: dict, *, base_url: str, base_api_url: str, secret: str, signed: bool):
    """A first-install callback as Bitbucket shapes it (§2.1), for a workspace never installed before."""
    client_key = f"ari:cloud:bitbucket::app/{ws['uuid']}/{stack.settings.app_key}"
    body = {"productType": "bitbucket", "eventType": "installed", "key": stack.settings.app_key,
            "clientKey": client_key, "sharedSecret": secret, "publicKey": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCB",
            "baseUrl": base_url, "baseApiUrl": base_api_url,
            "principal": {"type": "team", "username": ws["slug"], "display_name": ws["name"], "uuid": ws["uuid"]}}
    headers = {"Content-Type": "application/json"}
    if signed:
        now = int(time.time())
        claims = {"iss": client_key, "aud": client_key, "iat": now, "exp": now + 3600,
                  "qsh": hash_url("POST", "/connect/lifecycle/installed")}
        headers["Authorization"] = "JWT " + jwt.encode(claims, secret, algorithm="HS256")
    return requests.post(f"{stack.base_url}/connect/lifecycle/installed", data=json.dumps(body),
                         headers=headers, timeout=15)


def test_install_from_a_host_not_on_the_allow_list_is_refused(stack):
    ws = stack.sandbox.create_workspace("ws-evil-host")
    before = _counts(stack.ctx, ws["uuid"])
    response = _first_install(stack, ws, base_url="https://evil.example", base_api_url="https://api.evil.example",
                              secret="a-secret-that-is-long-enough-for-hs256!!", signed=True)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "host_not_allowed"
    assert _counts(stack.ctx, ws["uuid"]) == before


@pytest.mark.parametrize("signed", [False, True])
def test_install_whose_credentials_the_host_rejects_stores_nothing(stack, signed):
    sb = stack.sandbox
    ws = sb.create_workspace(f"ws-bad-creds-{int(signed)}")
    before = _counts(stack.ctx, ws["uuid"])
    response = _first_install(stack, ws, base_url=sb.web_url, base_api_url=sb.api_url,
                              secret="never-issued-by-the-host-but-long-enough", signed=signed)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "credentials_rejected"
    assert _counts(stack.ctx, ws["uuid"]) == before


def test_malformed_and_oversized_bodies(install_workspace, stack):
    ws = install_workspace(repos=0)
    before = _counts(stack.ctx, ws.uuid)
    bad = ws.api.request("PUT", "/api/v1/scope", data="{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    huge = ws.api.request("PUT", "/api/v1/scope", data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                          headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    lifecycle_bad = requests.post(f"{stack.base_url}/connect/lifecycle/installed", data="[]",
                                  headers={"Content-Type": "application/json"}, timeout=10)
    assert lifecycle_bad.status_code == 400
    assert _counts(stack.ctx, ws.uuid) == before
    assert ws.api.get("/api/v1/installation").json()["scope_mode"] == "all"


def test_tenant_a_cannot_reach_tenant_b_repositories(install_workspace, stack):
    a = install_workspace(repos=1)
    b = install_workspace(repos=1)
    wait_for(lambda: b.api.get("/api/v1/repositories").json()["size"] == 1, 30, message="b's inventory")
    b_uuid = b.api.get("/api/v1/repositories").json()["values"][0]["uuid"]
    assert a.api.get(f"/api/v1/repositories/{b_uuid}").status_code == 404
    assert a.api.get(f"/api/v1/repositories/{b_uuid}/snapshots").status_code == 404
    assert a.api.put(f"/api/v1/repositories/{b_uuid}/scope", {"in_scope": False}).status_code == 404
    assert all(r["uuid"] != b_uuid for r in a.api.get("/api/v1/repositories").json()["values"])


def test_uninstall_disables_keeps_backups_and_reinstall_reattaches(install_workspace, stack):
    ws = install_workspace(repos=1)
    wait_for(lambda: (ws.api.get("/api/v1/repositories").json()["values"] or [{}])[0].get("snapshot_count"),
             60, message="first backup")
    repo_uuid = ws.api.get("/api/v1/repositories").json()["values"][0]["uuid"]
    stack.sandbox.uninstall(ws.slug)
    assert ws.api.get("/api/v1/installation").status_code == 401
    with stack.ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == ws.client_key)).one()
        assert inst.status == "uninstalled"
        repo = s.scalars(select(Repository).where(Repository.uuid == repo_uuid)).one()
        assert (stack.ctx.vault.root / repo.vault_path).exists() and repo.snapshot_count >= 1
    again = stack.sandbox.install(ws.slug, f"{stack.base_url}/atlassian-connect.json")
    assert again["client_key"] == ws.client_key
    api = ws.api.__class__(stack.base_url, HostSigner(again["client_key"], again["shared_secret"]))
    snaps = api.get(f"/api/v1/repositories/{repo_uuid}/snapshots").json()
    assert snaps["size"] >= 1
    assert api.get("/api/v1/installation").json()["status"] == "active"


def test_unsigned_uninstall_changes_nothing(install_workspace, stack):
    ws = install_workspace(repos=0)
    response = stack.sandbox.post_lifecycle(ws.slug, "uninstalled", unsigned=True)
    assert response.status_code == 401
    assert ws.api.get("/api/v1/installation").json()["status"] == "active"


def test_health_reports_database_broker_and_data_dir(stack):
    body = requests.get(f"{stack.base_url}/healthz", timeout=10)
    assert body.status_code == 200
    report = body.json()
    assert report["ok"] and report["database"]["ok"] and report["broker"]["ok"] and report["data_dir"]["ok"]
    assert report["broker"]["kind"] == ("redis" if stack.settings.redis_url else "embedded")
