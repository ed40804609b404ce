"""Token mode end to end: `strongroom connect-workspace` with a sandbox access token or API token, HMAC-signed
workspace webhooks into the same outbox as Connect, a real Celery worker, and an expiring credential."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import uuid

import pytest
import requests
from sqlalchemy import func, select

from harness import ROOT, clone_env, git, settings_env, show_ref, wait_for
from strongroom.store.models import Event, Installation, Tenant
from strongroom.tokenmode import TokenCredential, connect_workspace, credential_notice
from tenant_api import OperatorApi, push_then_force_push_keeps_the_earlier_snapshot, wait_backed_up

pytestmark = pytest.mark.integration


def run_cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "strongroom.cli", *args], cwd=ROOT, env=settings_env(stack.settings),
                          capture_output=True, text=True, timeout=120)


def new_workspace(stack, repos: int = 1) -> str:
    slug = f"tm-{secrets.token_hex(3)}"
    stack.sandbox.create_workspace(slug)
    for i in range(repos):
        stack.sandbox.create_repository(slug, f"repo-{i}", commits=2)
    return slug


def connect(stack, slug: str, token: str, *, kind: str = "access_token", email: str | None = None):
    """Connect through the library (as the CLI does) and start the first backup on the real worker."""
    from workers.enqueue import CeleryDispatcher

    credential = TokenCredential(kind, token, email=email, api_base_url=stack.sandbox.api_url,
                                 base_url=stack.sandbox.web_url)
    result = connect_workspace(stack.ctx, slug, credential)
    CeleryDispatcher(stack.settings).run_job(result.job_id)
    return result


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_count(stack) -> int:
    with stack.ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event))


def _tenant_id(stack, slug: str) -> str:
    with stack.ctx.db.session() as s:
        return s.scalars(select(Tenant.id).where(Tenant.workspace_slug == slug)).one()


def tenant_exists(stack, slug: str) -> bool:
    with stack.ctx.db.session() as s:
        return s.scalars(select(Tenant).where(Tenant.workspace_slug == slug)).first() is not None


def test_connect_workspace_command_backs_up_every_repository(stack, tmp_path):
    sb = stack.sandbox
    slug = new_workspace(stack, repos=2)
    token_file = tmp_path / "token"
    token_file.write_text(sb.tokenmode.issue_workspace_token(slug) + "\n")
    done = run_cli(stack, "connect-workspace", "--workspace", slug, "--access-token-file", str(token_file),
                   "--api-base-url", sb.api_url, "--base-url", sb.web_url, "--expires-on", "2031-01-31")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == sb.workspace(slug).uuid
    assert token_file.read_text().strip() not in done.stdout + done.stderr
    api = OperatorApi.for_workspace(stack, slug)
    for name in ("repo-0", "repo-1"):
        assert api.snapshots(wait_backed_up(sb, api, slug, name)["uuid"])[-1]["trigger"] == "install"
    view = api.installation()
    assert (view["path"], view["status"], view["client_key"]) == ("token", "active", None)
    assert view["credential_expires_at"].startswith("2031-01-31")
    hooks = sb.hooks.all(slug)
    assert len(hooks) == 1 and hooks[0].repository_uuid is None and hooks[0].secret
    assert hooks[0].url == f"{stack.base_url}/hooks/bitbucket/{sb.workspace(slug).uuid.strip('{}')}"
    assert {"repo:push", "repo:created", "repo:deleted", "repo:updated", "repo:transfer",
            "repo:imported", "pullrequest:created"} <= set(hooks[0].events)


def test_push_force_push_and_deletion_keep_every_snapshot(stack, tmp_path):
    sb = stack.sandbox
    slug = new_workspace(stack)
    connect(stack, slug, sb.tokenmode.issue_workspace_token(slug))
    api = OperatorApi.for_workspace(stack, slug)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    push_then_force_push_keeps_the_earlier_snapshot(stack, api, slug, "repo-0", tmp_path / "old")
    live = sb.refs(slug, "repo-0")
    sb.delete_repository(slug, "repo-0")
    wait_for(lambda: api.repos()["repo-0"]["deleted_upstream"], 30, message="deleted flag")
    assert api.repos()["repo-0"]["snapshot_count"] == len(api.snapshots(repo["uuid"])) >= 3
    git("clone", "--mirror", f"{stack.base_url}/git/{slug}/repo-0.git", str(tmp_path / "kept"),
        env=clone_env(api.access_token()))
    assert show_ref(tmp_path / "kept") == live


def test_webhook_without_a_valid_signature_is_refused_and_nothing_recorded(stack):
    sb = stack.sandbox
    slug = new_workspace(stack, repos=0)
    connect(stack, slug, sb.tokenmode.issue_workspace_token(slug))
    secret = sb.hooks.all(slug)[0].secret
    url = f"{stack.base_url}/hooks/bitbucket/{sb.workspace(slug).uuid.strip('{}')}"
    body = json.dumps({"repository": {"uuid": str(uuid.uuid4()), "full_name": f"{slug}/new", "name": "new",
                                      "workspace": {"uuid": sb.workspace(slug).uuid, "slug": slug}}}).encode()
    headers = {"Content-Type": "application/json", "X-Event-Key": "repo:created"}
    before = event_count(stack)
    for signature in (None, "", "sha256=", "sha1=" + "0" * 40, "sha256=" + "0" * 64, signed("not-the-secret", body),
                      signed(secret, body + b" ")):
        extra = {} if signature is None else {"X-Hub-Signature": signature}
        answer = requests.post(url, data=body, headers={**headers, **extra}, timeout=10)
        assert answer.status_code == 401, (signature, answer.text)
        assert answer.json()["error"]["code"]
    other = f"{stack.base_url}/hooks/bitbucket/{uuid.uuid4()}"
    assert requests.post(other, data=body, headers={**headers, "X-Hub-Signature": signed(secret, body)},
                         timeout=10).status_code == 401
    assert event_count(stack) == before
    good = requests.post(url, data=body, headers={**headers, "X-Hub-Signature": signed(secret, body),
                                                  "X-Request-UUID": str(uuid.uuid4())}, timeout=10)
    assert good.status_code == 202 and event_count(stack) == before + 1


def test_expired_token_is_a_clear_state_and_a_new_token_resumes(stack):
    sb = stack.sandbox
    slug = new_workspace(stack)
    token = sb.tokenmode.issue_workspace_token(slug, expires_in=3600)
    connect(stack, slug, token)
    api = OperatorApi.for_workspace(stack, slug)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    sb.tokenmode.expire(token)
    sb.commit(slug, "repo-0", message="after expiry")  # the hook still delivers; the fetch is refused
    wait_for(lambda: api.installation()["status"] == "credential_expired", 30, message="credential_expired")
    failing = api.repos()["repo-0"]
    assert failing["state"] == "failing" and "credential" in failing["last_error"]
    assert failing["snapshot_count"] == repo["snapshot_count"]
    assert api.post("/api/v1/backups").status_code == 409
    tenant_id = _tenant_id(stack, slug)
    assert credential_notice(stack.ctx, tenant_id)["level"] == "danger"  # what the standalone panel shows
    connect(stack, slug, sb.tokenmode.issue_workspace_token(slug))
    assert credential_notice(stack.ctx, tenant_id) is None
    assert api.installation()["status"] == "active"
    assert len(sb.hooks.all(slug)) == 1
    wait_backed_up(sb, api, slug, "repo-0")
    sb.commit(slug, "repo-0", message="resumed")
    resumed = wait_backed_up(sb, api, slug, "repo-0")
    assert resumed["state"] == "ok" and resumed["last_error"] is None


def test_api_token_and_repository_hooks_when_the_workspace_hook_is_refused(stack):
    sb = stack.sandbox
    slug = new_workspace(stack, repos=2)
    email, token = sb.tokenmode.issue_api_token(slug, owner=False)
    connect(stack, slug, token, kind="api_token", email=email)
    hooks = sb.hooks.all(slug)
    assert len(hooks) == 2 and all(h.repository_uuid for h in hooks)
    assert all("pullrequest:created" in h.events for h in hooks)  # the token may read pull requests
    api = OperatorApi.for_workspace(stack, slug)
    wait_backed_up(sb, api, slug, "repo-0")
    wait_backed_up(sb, api, slug, "repo-1")
    sha = sb.commit(slug, "repo-1", message="through a repository hook")
    assert wait_backed_up(sb, api, slug, "repo-1")["uuid"]
    assert api.snapshots(api.repos()["repo-1"]["uuid"])[0]["refs"]["refs/heads/main"] == sha


@pytest.mark.parametrize("case", ["revoked", "no-repository-scope", "no-webhook-scope", "wrong-email"])
def test_refused_credentials_exit_non_zero_and_record_nothing(stack, tmp_path, case):
    sb = stack.sandbox
    slug = new_workspace(stack)
    args = ["--api-base-url", sb.api_url, "--base-url", sb.web_url, "--workspace", slug]
    if case == "wrong-email":
        _, token = sb.tokenmode.issue_api_token(slug)
        args += ["--api-token-file", str(tmp_path / "t"), "--email", "someone@else.example"]
    else:
        scopes = {"revoked": ["repository", "webhook"], "no-repository-scope": ["webhook"],
                  "no-webhook-scope": ["repository"]}[case]
        token = sb.tokenmode.issue_workspace_token(slug, scopes=scopes)
        if case == "revoked":
            sb.tokenmode.revoke(token)
        args += ["--access-token-file", str(tmp_path / "t")]
    (tmp_path / "t").write_text(token)
    done = run_cli(stack, "connect-workspace", *args)
    expected = {"revoked": "credential_refused", "no-repository-scope": "missing_scope",
                "no-webhook-scope": "webhooks_refused", "wrong-email": "credential_refused"}[case]
    assert done.returncode != 0 and expected in done.stderr, done.stderr
    assert token not in done.stdout + done.stderr
    assert not tenant_exists(stack, slug) and sb.hooks.all(slug) == []


def test_reconnect_reconciles_one_hook_and_disconnect_removes_it(stack, tmp_path):
    sb = stack.sandbox
    slug = new_workspace(stack)
    token = sb.tokenmode.issue_workspace_token(slug)
    connect(stack, slug, token)
    first = sb.hooks.all(slug)[0]
    connect(stack, slug, token)
    again = sb.hooks.all(slug)
    assert [h.uuid for h in again] == [first.uuid] and again[0].secret == first.secret
    api = OperatorApi.for_workspace(stack, slug)
    repo = wait_backed_up(sb, api, slug, "repo-0")
    done = run_cli(stack, "disconnect-workspace", "--workspace", slug)
    assert done.returncode == 0, done.stderr
    assert sb.hooks.all(slug) == [] and api.installation()["status"] == "disconnected"
    assert len(api.snapshots(repo["uuid"])) == repo["snapshot_count"]
    with stack.ctx.db.session() as s:
        inst = s.scalars(select(Installation).join(Tenant, Tenant.id == Installation.tenant_id)
                         .where(Tenant.workspace_slug == slug)).one()
        assert inst.secret_enc is None and inst.hook_secret_enc is None
    body = b'{"repository": {"uuid": "{00000000-0000-0000-0000-000000000000}"}}'
    hook_url = f"{stack.base_url}/hooks/bitbucket/{sb.workspace(slug).uuid.strip('{}')}"
    assert requests.post(hook_url, data=body, headers={"X-Event-Key": "repo:push",
                                                       "X-Hub-Signature": signed(first.secret, body)},
                         timeout=10).status_code == 401
