"""The Forge path end to end: the sandbox's fake Forge platform (its own RSA keys and JWKS) installs the app
described by forge/manifest.yml, sends product events, ticks and UI calls to Strongroom's /forge routes, and
the real Celery worker backs up with the Forge system token."""
from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from datetime import timedelta

import pytest
import requests
import yaml
from sqlalchemy import func, select

from harness import ROOT, clone_env, git, show_ref, wait_for
from strongroom.operators import create_operator_key
from strongroom.ports import RecordingDispatcher
from strongroom.store.models import Event, Installation, Job, Tenant, utcnow
from tenant_api import OperatorApi, push_then_force_push_keeps_the_earlier_snapshot, wait_backed_up

pytestmark = pytest.mark.integration
MANIFEST = yaml.safe_load((ROOT / "forge" / "manifest.yml").read_text())


@pytest.fixture(autouse=True)
def fast_forge(stack):
    stack.sandbox.forge.retry_interval = 0.2  # Forge waits 60 s between redeliveries; scaled down here
    yield
    stack.sandbox.forge.wait_idle()
    stack.sandbox.forge.envelope, stack.sandbox.forge.duplicate_events = "bare", False


def forge_workspace(stack, repos: int = 1) -> tuple[str, OperatorApi]:
    sb = stack.sandbox
    slug = f"fg-{secrets.token_hex(3)}"
    sb.create_workspace(slug)
    for i in range(repos):
        sb.create_repository(slug, f"repo-{i}", commits=2)
    call = sb.forge.install(slug, stack.base_url, manifest=MANIFEST)
    assert call.status == 200, call
    return slug, OperatorApi.for_workspace(stack, slug)


def forge_post(stack, slug: str, route: str, body: dict, **fit) -> requests.Response:
    sb = stack.sandbox
    headers = {"Authorization": f"Bearer {sb.forge.fit(slug, f'sr-{route}', **fit)}",
               "x-forge-oauth-system": sb.forge.system_token(slug)}
    return requests.post(f"{stack.base_url}/forge/{route}", json=body, headers=headers, timeout=10)


def counts(stack) -> tuple[int, int]:
    with stack.ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)), s.scalar(select(func.count()).select_from(Job))


def forge_binding(stack, slug: str):
    with stack.ctx.db.session() as s:
        return s.scalars(select(Installation).join(Tenant, Tenant.id == Installation.tenant_id)
                         .where(Tenant.workspace_slug == slug, Installation.path == "forge")).one()


def test_install_backs_up_everything_and_pushes_become_snapshots(stack, tmp_path):
    sb = stack.sandbox
    slug, api = forge_workspace(stack, repos=2)
    view = api.installation()
    assert (view["path"], view["status"], view["client_key"]) == ("forge", "active", None)
    for name in ("repo-0", "repo-1"):
        assert api.snapshots(wait_backed_up(sb, api, slug, name)["uuid"])[-1]["trigger"] == "install"
    push_then_force_push_keeps_the_earlier_snapshot(stack, api, slug, "repo-0", tmp_path / "old")
    live = sb.refs(slug, "repo-1")
    sb.delete_repository(slug, "repo-1")
    wait_for(lambda: api.repos()["repo-1"]["deleted_upstream"], 30, message="deleted flag via a REST refresh")
    git("clone", "--mirror", f"{stack.base_url}/git/{slug}/repo-1.git", str(tmp_path / "kept"),
        env=clone_env(api.access_token()))
    assert show_ref(tmp_path / "kept") == live


def test_wrapped_duplicated_late_and_out_of_order_events_are_harmless(stack):
    sb = stack.sandbox
    slug, api = forge_workspace(stack, repos=1)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    sb.forge.envelope, sb.forge.duplicate_events = "payload", True
    sha = sb.commit(slug, "repo-0", message="wrapped and sent twice")
    sb.forge.wait_idle()
    wait_backed_up(sb, api, slug, "repo-0")
    assert api.snapshots(repo["uuid"])[0]["refs"]["refs/heads/main"] == sha
    with stack.ctx.db.session() as s:
        keys = list(s.scalars(select(Event.delivery_id).join(Tenant, Tenant.id == Event.tenant_id)
                              .where(Tenant.workspace_slug == slug, Event.event_key == "avi:bitbucket:push:repository")))
    assert len(keys) == len(set(keys)) == 1  # the duplicate delivery was recognised
    stale_delete = {"eventType": "avi:bitbucket:deleted:repository", "timestamp": "2020-01-01T00:00:00Z",
                    "repository": {"uuid": repo["uuid"]}, "workspace": {"uuid": sb.workspace(slug).uuid}}
    assert forge_post(stack, slug, "events", {"payload": stale_delete}).status_code == 200
    sb.create_repository(slug, "repo-new", commits=1)
    wait_backed_up(sb, api, slug, "repo-new")
    assert api.repos()["repo-0"]["deleted_upstream"] is False  # REST said it exists: the event is not trusted
    sb.delete_repository(slug, "repo-new")
    wait_for(lambda: api.repos()["repo-new"]["deleted_upstream"], 30, message="repo-new deleted")
    late_push = {"eventType": "avi:bitbucket:push:repository", "repository": {"uuid": api.repos()["repo-new"]["uuid"]},
                 "workspace": {"uuid": sb.workspace(slug).uuid}, "push": {"ref": "refs/heads/main"}}
    assert forge_post(stack, slug, "events", late_push).status_code == 200
    assert api.repos()["repo-new"]["deleted_upstream"] is True


FIT_CASES = {
    "unknown key": dict(foreign_key=True),
    "alg HS256": dict(alg="HS256"),
    "alg none": dict(alg="none"),
    "wrong audience": dict(overrides={"aud": f"ari:cloud:ecosystem::app/{uuid.uuid4()}"}),
    "wrong issuer": dict(overrides={"iss": "forge/someone-else"}),
    "expired": dict(overrides={"iat": int(time.time()) - 600, "nbf": int(time.time()) - 600,
                               "exp": int(time.time()) - 300}),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_invalid_invocation_tokens_are_refused_and_nothing_recorded(stack, case):
    sb = stack.sandbox
    slug, _ = forge_workspace(stack, repos=0)
    event = {"eventType": "avi:bitbucket:created:repository", "repository": {"uuid": str(uuid.uuid4())},
             "workspace": {"uuid": sb.workspace(slug).uuid}}
    before = counts(stack)
    answer = forge_post(stack, slug, "events", event, **FIT_CASES[case])
    assert answer.status_code == 401 and answer.json()["error"]["code"], answer.text
    assert requests.post(f"{stack.base_url}/forge/events", json=event, timeout=10).status_code == 401
    assert counts(stack) == before
    assert forge_post(stack, slug, "events", event).status_code == 200  # the same event, properly signed
    assert counts(stack)[0] == before[0] + 1


@pytest.mark.parametrize("route", ["events", "lifecycle", "tick", "uninstall"])
def test_a_body_naming_another_workspace_is_refused(stack, route):
    slug, api = forge_workspace(stack, repos=0)
    other = "{%s}" % uuid.uuid4()
    bodies = {"events": {"eventType": "avi:bitbucket:created:repository", "repository": {"uuid": str(uuid.uuid4())},
                         "workspace": {"uuid": other}},
              "lifecycle": {"eventType": "avi:forge:installed:app", "context": f"ari:cloud:bitbucket::workspace/{other[1:-1]}"},
              "tick": {"context": {"workspaceId": other}},
              "uninstall": {"payload": {"context": {"workspaceId": other}}}}
    before = counts(stack)
    answer = forge_post(stack, slug, route, bodies[route])
    assert 400 <= answer.status_code < 500 and answer.json()["error"]["code"] == "foreign_workspace"
    assert counts(stack) == before and api.installation()["status"] == "active"


def test_rotated_signing_keys_are_fetched_once_on_an_unknown_kid(stack):
    sb = stack.sandbox
    slug, _ = forge_workspace(stack, repos=0)
    old = sb.forge.keys.current_kid
    sb.forge.keys.rotate()
    try:
        assert forge_post(stack, slug, "tick", {}).status_code == 200
    finally:
        sb.forge.keys.drop(old)


def test_forge_routes_are_404_without_an_app_id(stack):
    from addon import create_app

    settings = stack.settings.with_overrides(forge_app_id=None)
    ctx = dataclasses.replace(stack.ctx, settings=settings)  # same database, Forge switched off
    app = create_app(settings, ctx=ctx, dispatcher=RecordingDispatcher())
    client = app.test_client()
    for path in ("/forge/events", "/forge/lifecycle", "/forge/tick", "/forge/uninstall", "/forge/ui/api/v1/installation"):
        for method in ("GET", "POST", "PUT", "DELETE"):
            assert client.open(path, method=method, json={}).status_code == 404, (method, path)


def test_connect_then_forge_keeps_the_snapshot_history(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    api = OperatorApi(stack.base_url, create_operator_key(stack.ctx, ws.slug, "move").key, stack.ctx)
    repo = wait_backed_up(sb, api, ws.slug, "repo-0")
    history = [s["id"] for s in api.snapshots(repo["uuid"])]
    sb.uninstall(ws.slug)
    assert sb.forge.install(ws.slug, stack.base_url, manifest=MANIFEST).status == 200
    assert api.installation()["path"] == "forge"
    sha = sb.commit(ws.slug, "repo-0", message="after moving to Forge")
    wait_backed_up(sb, api, ws.slug, "repo-0")
    after = api.snapshots(repo["uuid"])
    assert [s["id"] for s in after][-len(history):] == history
    assert after[0]["refs"]["refs/heads/main"] == sha and api.repos()["repo-0"]["uuid"] == repo["uuid"]


def test_settings_page_answers_like_the_api_and_changes_need_an_admin(stack):
    sb = stack.sandbox
    slug, api = forge_workspace(stack, repos=1)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    owner = sb.forge._owner(sb.forge.install_of(slug))
    member = sb.forge.add_member(slug, "member")
    status, body = sb.forge.invoke_remote(slug, "/forge/ui/api/v1/installation", principal=member)
    assert status == 200 and body == api.installation()
    status, body = sb.forge.invoke_remote(slug, "/forge/ui/api/v1/repositories?q=repo", principal=member)
    assert status == 200 and body["values"] == api.get("/api/v1/repositories", params="q=repo").json()["values"]
    path = f"/forge/ui/api/v1/repositories/{repo['uuid']}/scope"
    status, body = sb.forge.invoke_remote(slug, path, method="PUT", body={"in_scope": False}, principal=member)
    assert status == 403 and body["error"]["code"] == "not_admin" and api.repos()["repo-0"]["in_scope"] is True
    status, body = sb.forge.invoke_remote(slug, path, method="PUT", body={"in_scope": False}, principal=owner)
    assert status == 200 and body["in_scope"] is False and api.repos()["repo-0"]["in_scope"] is False
    status, body = sb.forge.invoke_remote(slug, "/forge/ui/api/v1/backups", method="POST", body={}, principal=owner)
    assert status == 202 and body["job"]["kind"] == "backup_all"
    status, body = sb.forge.invoke_remote(slug, "/forge/ui/api/v1/no-such-thing", principal=owner)
    assert status == 404 and body["error"]["code"]


def test_without_a_token_syncs_wait_and_the_next_tick_resumes_them(stack):
    sb = stack.sandbox
    slug, api = forge_workspace(stack, repos=1)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    sb.commit(slug, "repo-0", message="while no token is at hand", deliver=False)
    with stack.ctx.db.session() as s:
        inst = s.get(Installation, forge_binding(stack, slug).id)
        inst.token_enc, inst.token_expires_at = None, None
    assert api.post(f"/api/v1/repositories/{repo['uuid']}/backups").status_code == 202
    waiting = wait_for(lambda: (lambda r: r if r["last_error"] else None)(api.repos()["repo-0"]), 30,
                       message="the sync to wait for a token")
    assert "token" in waiting["last_error"] and api.installation()["status"] == "active"
    assert waiting["snapshot_count"] == repo["snapshot_count"]
    assert sb.forge.tick(slug).status == 200
    resumed = wait_backed_up(sb, api, slug, "repo-0")
    assert resumed["state"] == "ok" and resumed["snapshot_count"] == repo["snapshot_count"] + 1


def test_pre_uninstall_and_a_long_silence_disconnect_but_keep_backups(stack):
    sb = stack.sandbox
    slug, api = forge_workspace(stack, repos=1)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    # A long silence: no tick for many intervals and no token left; the next refusal means "gone".
    with stack.ctx.db.session() as s:
        inst = s.get(Installation, forge_binding(stack, slug).id)
        inst.token_enc, inst.token_expires_at = None, None
        inst.last_contact_at = utcnow() - timedelta(days=1)
    assert api.post(f"/api/v1/repositories/{repo['uuid']}/backups").status_code == 202
    wait_for(lambda: api.installation()["status"] == "disconnected", 30, message="silent Forge app disconnected")
    assert api.post("/api/v1/backups").status_code == 409
    assert sb.forge.tick(slug).status == 200  # it was only quiet: a tick reconnects and catches up
    assert api.installation()["status"] == "active"
    sb.commit(slug, "repo-0", message="after the silence")
    wait_backed_up(sb, api, slug, "repo-0")
    assert sb.forge.uninstall(slug).status == 200
    view = api.installation()
    assert view["status"] == "disconnected" and view["path"] == "forge"
    assert len(api.snapshots(repo["uuid"])) == api.repos()["repo-0"]["snapshot_count"] >= 2
    assert forge_binding(stack, slug).token_enc is None
