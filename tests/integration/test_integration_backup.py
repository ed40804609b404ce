"""The backup engine end to end: sandbox host -> webhook -> outbox -> real Celery worker -> vault -> clone."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
import requests
from sqlalchemy import func, select

from harness import clone_env, git, show_ref, sync_settled, wait_for
from strongroom.store.models import Event, Repository, Tenant

pytestmark = pytest.mark.integration


def repos_by_slug(ws) -> dict:
    return {r["slug"]: r for r in ws.api.get("/api/v1/repositories").json()["values"]}


def snapshots(ws, uuid: str) -> list:
    return ws.api.get(f"/api/v1/repositories/{uuid}/snapshots", params="pagelen=100").json()["values"]


def wait_backed_up(stack, ws, slug: str, timeout: float = 60) -> dict:
    """Wait until the newest snapshot equals the sandbox's live refs and the repository is settled.

    A push can start a follow-up round after the snapshot that already holds its tips (and between
    two rounds the repository reads "ok"), so the view is returned only once no round runs and (see
    ``harness.sync_settled``) none is requested or about to be; the view is read again after those checks
    and must not have changed, so the state and snapshot_count returned are the settled ones."""
    def done():
        repo = repos_by_slug(ws).get(slug)
        if not repo or not repo["snapshot_count"] or repo["state"] == "syncing":
            return None
        snaps = snapshots(ws, repo["uuid"])
        if not snaps or snaps[0]["refs"] != stack.sandbox.refs(ws.slug, slug):
            return None
        if not sync_settled(stack.ctx, repo["uuid"]):
            return None
        return repo if repos_by_slug(ws).get(slug) == repo else None
    return wait_for(done, timeout, 0.2, message=f"{slug} backed up to the live state")


def clone(stack, ws, token: str, slug: str, dest, snapshot: str | None = None, check=True):
    path = f"{slug}/snapshots/{snapshot}.git" if snapshot else f"{slug}.git"
    return git("clone", "--mirror", f"{stack.base_url}/git/{ws.slug}/{path}", str(dest), env=clone_env(token),
               check=check)


def token_for(ws) -> str:
    response = ws.api.post("/api/v1/access-tokens", {"label": "tests", "expires_in_days": 7})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_install_backs_up_every_repository(install_workspace, stack):
    ws = install_workspace(repos=3)
    for i in range(3):
        repo = wait_backed_up(stack, ws, f"repo-{i}")
        assert repo["in_scope"] and repo["state"] == "ok" and repo["size_bytes"] > 0
        assert snapshots(ws, repo["uuid"])[-1]["trigger"] == "install"


def test_push_becomes_a_snapshot_and_clones(install_workspace, stack, tmp_path):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    sha = stack.sandbox.commit(ws.slug, "repo-0", message="after install")
    wait_backed_up(stack, ws, "repo-0", timeout=30)
    newest = snapshots(ws, repo["uuid"])[0]
    assert newest["refs"]["refs/heads/main"] == sha and newest["trigger"] == "push"
    token = token_for(ws)
    clone(stack, ws, token, "repo-0", tmp_path / "latest")
    assert show_ref(tmp_path / "latest") == stack.sandbox.refs(ws.slug, "repo-0")
    assert not [r for r in git("for-each-ref", cwd=tmp_path / "latest").stdout.splitlines() if "strongroom" in r]


def test_force_push_deleted_branch_and_moved_tag_stay_restorable(install_workspace, stack, tmp_path):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.commit(ws.slug, "repo-0", branch="feature", message="feature work")
    sb.create_tag(ws.slug, "repo-0", "v1", annotated=True, message="release 1")
    wait_backed_up(stack, ws, "repo-0")
    uuid = repos_by_slug(ws)["repo-0"]["uuid"]
    before = sb.refs(ws.slug, "repo-0")
    snap_before = snapshots(ws, uuid)[0]["id"]
    sb.force_push(ws.slug, "repo-0", branch="main")
    sb.delete_branch(ws.slug, "repo-0", "feature")
    sb.move_tag(ws.slug, "repo-0", "v1", target=sb.refs(ws.slug, "repo-0")["refs/heads/main"])
    wait_backed_up(stack, ws, "repo-0")
    token = token_for(ws)
    clone(stack, ws, token, "repo-0", tmp_path / "old", snapshot=snap_before)
    assert show_ref(tmp_path / "old") == before
    assert git("fsck", "--no-dangling", cwd=tmp_path / "old").returncode == 0
    latest = show_ref(clone(stack, ws, token, "repo-0", tmp_path / "new") and tmp_path / "new")
    assert "refs/heads/feature" not in latest and latest["refs/heads/main"] != before["refs/heads/main"]


def test_excluded_repository_is_not_synced_but_keeps_its_backups(install_workspace, stack):
    ws = install_workspace(repos=2)
    wait_backed_up(stack, ws, "repo-0")
    repo = wait_backed_up(stack, ws, "repo-1")
    count = repo["snapshot_count"]
    response = ws.api.put(f"/api/v1/repositories/{repo['uuid']}/scope", {"in_scope": False})
    assert response.status_code == 200 and response.json()["in_scope"] is False
    stack.sandbox.commit(ws.slug, "repo-1", message="not backed up")
    stack.sandbox.commit(ws.slug, "repo-0", message="backed up")
    wait_backed_up(stack, ws, "repo-0")
    after = repos_by_slug(ws)["repo-1"]
    assert after["snapshot_count"] == count and after["in_scope"] is False
    assert ws.api.post(f"/api/v1/repositories/{repo['uuid']}/backups").status_code == 409
    # selected mode keeps explicit choices: repo-1 stays out, repo-0 (no choice) drops out
    assert ws.api.put("/api/v1/scope", {"mode": "selected"}).json()["scope_mode"] == "selected"
    scoped = {s: r["in_scope"] for s, r in repos_by_slug(ws).items()}
    assert scoped == {"repo-0": False, "repo-1": False}
    ws.api.put(f"/api/v1/repositories/{repo['uuid']}/scope", {"in_scope": True})
    wait_backed_up(stack, ws, "repo-1")


def test_repository_deleted_upstream_keeps_backups(install_workspace, stack, tmp_path):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    refs = stack.sandbox.refs(ws.slug, "repo-0")
    stack.sandbox.delete_repository(ws.slug, "repo-0")
    wait_for(lambda: repos_by_slug(ws)["repo-0"]["deleted_upstream"], 30, message="deleted flag")
    view = repos_by_slug(ws)["repo-0"]
    assert view["snapshot_count"] == repo["snapshot_count"]
    clone(stack, ws, token_for(ws), "repo-0", tmp_path / "kept")
    assert show_ref(tmp_path / "kept") == refs


def test_burst_of_pushes_coalesces_into_few_fetches(install_workspace, stack, monkeypatch):
    """Pushes that arrive while a sync holds the repository are caught up by one more round, not one each.

    The first push's round is held at the sandbox's git endpoint until the rest of the burst has been
    applied, so the outcome does not depend on how fast this machine pushes compared to how fast the
    worker syncs (on a loaded machine every push could otherwise finish its own round first)."""
    from sandbox import githttp

    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    fetching, release = threading.Event(), threading.Event()
    serve = githttp._run_backend

    def held(sb, workspace, repository, suffix, service):
        if suffix == "git-upload-pack" and repository.uuid == ws.repos[0]["uuid"]:
            fetching.set()
            release.wait(90)
        return serve(sb, workspace, repository, suffix, service)

    monkeypatch.setattr(githttp, "_run_backend", held)
    try:
        stack.sandbox.commit(ws.slug, "repo-0", message="burst 0")
        wait_for(fetching.is_set, 60, 0.05, message="the first push's sync fetching")
        for i in range(1, 20):
            stack.sandbox.commit(ws.slug, "repo-0", message=f"burst {i}")
        wait_for(lambda: not _unapplied_events(stack, ws), 60, message="every push applied")
    finally:
        release.set()
    wait_backed_up(stack, ws, "repo-0", timeout=60)
    new_snapshots = len(snapshots(ws, repo["uuid"])) - repo["snapshot_count"]
    # the held round records what it listed (the first tip, or already the last one), then one round the rest
    assert 1 <= new_snapshots <= 2


def _unapplied_events(stack, ws) -> int:
    with stack.ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event).join(Tenant, Tenant.id == Event.tenant_id)
                        .where(Tenant.workspace_uuid == ws.uuid, Event.processed_at.is_(None)))


def test_lost_webhooks_are_caught_by_a_backup_run(install_workspace, stack):
    ws = install_workspace(repos=2)
    wait_backed_up(stack, ws, "repo-0")
    wait_backed_up(stack, ws, "repo-1")
    sha = stack.sandbox.commit(ws.slug, "repo-1", message="webhook lost", deliver=False)
    new = stack.sandbox.create_repository(ws.slug, "repo-new", commits=1, deliver=False)
    response = ws.api.post("/api/v1/backups")
    assert response.status_code == 202
    job_id = response.json()["job"]["id"]
    job = wait_for(lambda: (lambda j: j if j["state"] in ("succeeded", "failed") else None)(
        ws.api.get(f"/api/v1/jobs/{job_id}").json()), 60, message="sweep job")
    assert job["state"] == "succeeded" and job["progress"]["done"] == job["progress"]["total"] == 3
    assert snapshots(ws, repos_by_slug(ws)["repo-1"]["uuid"])[0]["refs"]["refs/heads/main"] == sha
    assert repos_by_slug(ws)["repo-new"]["uuid"] == new["uuid"]
    wait_backed_up(stack, ws, "repo-new")


def test_job_of_another_tenant_is_not_found(install_workspace):
    a = install_workspace(repos=0)
    b = install_workspace(repos=0)
    job_id = a.api.post("/api/v1/backups").json()["job"]["id"]
    assert b.api.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_git_endpoint_auth_isolation_and_read_only(install_workspace, stack, tmp_path):
    a = install_workspace(repos=1)
    b = install_workspace(repos=1)
    wait_backed_up(stack, a, "repo-0")
    token_a, token_b = token_for(a), token_for(b)
    url = f"{stack.base_url}/git/{a.slug}/repo-0.git/info/refs?service=git-upload-pack"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == 'Basic realm="Strongroom"'
    assert requests.get(url, auth=("x-token-auth", token_b), timeout=10).status_code == 401
    assert clone(stack, a, token_b, "repo-0", tmp_path / "x", check=False).returncode != 0
    push_url = f"{stack.base_url}/git/{a.slug}/repo-0.git/info/refs?service=git-receive-pack"
    assert requests.get(push_url, auth=("x-token-auth", token_a), timeout=10).status_code == 403
    tokens = a.api.get("/api/v1/access-tokens").json()["values"]
    assert tokens and all("token" not in t for t in tokens)
    assert a.api.delete(f"/api/v1/access-tokens/{tokens[0]['id']}").status_code == 204
    assert requests.get(url, auth=("x-token-auth", token_a), timeout=10).status_code == 401
    assert b.api.delete(f"/api/v1/access-tokens/{tokens[0]['id']}").status_code == 404


def test_clone_from_backup_while_bitbucket_is_down(install_workspace, stack, tmp_path):
    ws = install_workspace(repos=1)
    wait_backed_up(stack, ws, "repo-0")
    token = token_for(ws)
    stack.sandbox.set_down(True)
    try:
        clone(stack, ws, token, "repo-0", tmp_path / "offline")
    finally:
        stack.sandbox.set_down(False)
    assert show_ref(tmp_path / "offline") == stack.sandbox.refs(ws.slug, "repo-0")


def test_worker_killed_mid_fetch_leaves_a_consistent_vault(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1, commits=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    files = {f"blob-{i}.bin": os.urandom(64 * 1024).hex() for i in range(40)}
    sb.commit(ws.slug, "repo-0", files=files, message="big", deliver=False)
    sb.git_delay = 0.05
    try:
        ws.api.post(f"/api/v1/repositories/{repo['uuid']}/backups")
        wait_for(lambda: _git_fetch_running(stack.worker.proc.pid), 30, 0.05, message="a running git fetch")
        killed = [pid for pid in stack.worker.child_pids() if _is_busy(pid)]
        for pid in killed or stack.worker.child_pids():
            os.kill(pid, signal.SIGKILL)
    finally:
        sb.git_delay = 0.0
    wait_backed_up(stack, ws, "repo-0", timeout=90)
    with stack.ctx.db.session() as s:
        row = s.scalars(select(Repository).where(Repository.uuid == repo["uuid"])).one()
        path = stack.ctx.vault.root / row.vault_path
    assert git("fsck", "--no-dangling", cwd=path).returncode == 0
    for snap in snapshots(ws, repo["uuid"]):
        for sha in snap["refs"].values():
            assert git("cat-file", "-e", sha, cwd=path, check=False).returncode == 0


def _git_fetch_running(worker_pid: int) -> bool:
    """A git fetch descending from this test's worker, never another suite's."""
    rows = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout.splitlines()
    parent, args = {}, {}
    for row in rows:
        pid, ppid, cmd = (row.strip().split(None, 2) + [""])[:3]
        parent[int(pid)], args[int(pid)] = int(ppid), cmd
    for pid, cmd in args.items():
        if "git" in cmd and "fetch" in cmd:
            node = pid
            while node > 1:
                node = parent.get(node, 1)
                if node == worker_pid:
                    return True
    return False


def _is_busy(pid: int) -> bool:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return bool(out.strip())


def test_sweep_flags_a_repository_deleted_without_a_webhook(install_workspace, stack):
    ws = install_workspace(repos=2)
    wait_backed_up(stack, ws, "repo-0")
    wait_backed_up(stack, ws, "repo-1")
    stack.sandbox.delete_repository(ws.slug, "repo-1", deliver=False)
    job_id = ws.api.post("/api/v1/backups").json()["job"]["id"]
    wait_for(lambda: ws.api.get(f"/api/v1/jobs/{job_id}").json()["state"] == "succeeded", 60, message="sweep")
    views = repos_by_slug(ws)
    assert views["repo-1"]["deleted_upstream"] is True and views["repo-1"]["snapshot_count"] >= 1
    assert views["repo-0"]["deleted_upstream"] is False


def test_switching_back_to_all_backs_up_repositories_that_came_into_scope(install_workspace, stack):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    ws.api.put("/api/v1/scope", {"mode": "selected"})
    sha = stack.sandbox.commit(ws.slug, "repo-0", message="while out of scope")
    assert repos_by_slug(ws)["repo-0"]["in_scope"] is False
    ws.api.put("/api/v1/scope", {"mode": "all"})
    wait_backed_up(stack, ws, "repo-0")
    assert snapshots(ws, repo["uuid"])[0]["refs"]["refs/heads/main"] == sha


def test_rename_keeps_one_backup_keyed_by_uuid(install_workspace, stack, tmp_path):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    stack.sandbox.rename_repository(ws.slug, "repo-0", "renamed")
    wait_for(lambda: "renamed" in repos_by_slug(ws), 30, message="rename applied")
    sha = stack.sandbox.commit(ws.slug, "renamed", message="after rename")
    view = wait_backed_up(stack, ws, "renamed")
    assert view["uuid"] == repo["uuid"] and "repo-0" not in repos_by_slug(ws)
    assert snapshots(ws, repo["uuid"])[0]["refs"]["refs/heads/main"] == sha
    assert len(snapshots(ws, repo["uuid"])) == view["snapshot_count"] > repo["snapshot_count"]
    clone(stack, ws, token_for(ws), "renamed", tmp_path / "renamed")
    assert show_ref(tmp_path / "renamed")["refs/heads/main"] == sha


def test_webhook_naming_another_workspace_is_refused_and_not_recorded(install_workspace, stack):
    import json as _json
    import time as _time
    import uuid as _uuid

    import jwt as _jwt
    from atlassian_jwt.url_utils import hash_url
    from sqlalchemy import func

    from strongroom.store.models import Event

    a = install_workspace(repos=0)
    b = install_workspace(repos=1)
    b_repo = stack.sandbox.create_repository(b.slug, "target", commits=1, deliver=False)
    body = {"event": "repo:push", "data": {"push": {"changes": []}, "repository": {
        "type": "repository", "uuid": b_repo["uuid"], "full_name": f"{b.slug}/target", "name": "target",
        "workspace": {"type": "workspace", "uuid": b.uuid, "slug": b.slug}}}}
    now = int(_time.time())
    token = _jwt.encode({"iss": a.client_key, "aud": a.client_key, "iat": now, "exp": now + 60,
                         "qsh": hash_url("POST", "/connect/webhooks")}, a.shared_secret, algorithm="HS256")
    with stack.ctx.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Event))
    response = requests.post(f"{stack.base_url}/connect/webhooks", data=_json.dumps(body),
                             headers={"Authorization": f"JWT {token}", "Content-Type": "application/json",
                                      "X-Request-UUID": str(_uuid.uuid4()), "X-Event-Key": "repo:push"},
                             timeout=10)
    assert response.status_code == 403 and response.json()["error"]["code"] == "foreign_workspace"
    with stack.ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == before
