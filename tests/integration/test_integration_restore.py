"""Restores end to end: API plan -> job -> real Celery worker -> push with a write-scoped token -> sandbox host."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from harness import ROOT, ApiClient, HostSigner, git, show_ref, wait_for
from sandbox import gitops
from strongroom.store.models import Repository
from test_integration_backup import repos_by_slug, snapshots, wait_backed_up

pytestmark = pytest.mark.integration


def restores(ws, uuid: str, body: dict):
    return ws.api.post(f"/api/v1/repositories/{uuid}/restores", body)


def finished(ws, job_id: str, timeout: float = 90) -> dict:
    """Poll the job until it succeeded or failed."""
    def done():
        job = ws.api.get(f"/api/v1/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed") else None
    return wait_for(done, timeout, 0.2, message=f"job {job_id}")


def run(ws, uuid: str, body: dict) -> tuple[dict, dict]:
    """Start a restore (not a dry run); return its answer and the finished job."""
    response = restores(ws, uuid, {**body, "dry_run": False})
    assert response.status_code == 202, response.text
    answer = response.json()
    return answer, finished(ws, answer["job"]["id"])


def vault_of(stack, uuid: str) -> Path:
    with stack.ctx.db.session() as s:
        return stack.ctx.vault.root / s.scalars(select(Repository.vault_path).where(Repository.uuid == uuid)).one()


@contextmanager
def damaged(path: Path):
    """Simulate a broken disk under one vault: its objects disappear, and come back afterwards."""
    objects, aside = path / "objects", path.parent / f"{path.name}.objects-aside"
    objects.rename(aside)
    objects.mkdir()
    try:
        yield
    finally:
        shutil.rmtree(objects)
        aside.rename(objects)


def deleted_upstream(stack, ws, *slugs: str) -> None:
    for slug in slugs:
        stack.sandbox.delete_repository(ws.slug, slug)
    wait_for(lambda: all(repos_by_slug(ws)[s]["deleted_upstream"] for s in slugs), 30, message="deleted flags")


def test_deleted_branch_comes_back_under_a_new_name_then_by_overwrite(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.commit(ws.slug, "repo-0", branch="feature", message="feature work")
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    feature = snap["refs"]["refs/heads/feature"]
    sb.delete_branch(ws.slug, "repo-0", "feature")
    wait_backed_up(stack, ws, "repo-0")
    before = sb.refs(ws.slug, "repo-0")
    body = {"snapshot_id": snap["id"], "refs": ["refs/heads/feature"]}
    plan = restores(ws, repo["uuid"], body)
    restored = f"refs/heads/restored/{snap['taken_at'][:10]}/feature"
    assert plan.status_code == 200 and "job" not in plan.json() and plan.json()["dry_run"] is True
    assert plan.json()["plan"] == [{"ref": "refs/heads/feature", "action": "create", "from": None, "to": feature,
                                    "target_ref": restored}]
    assert sb.refs(ws.slug, "repo-0") == before  # the plan alone touched nothing
    answer, job = run(ws, repo["uuid"], body)
    assert job["state"] == "succeeded" and job["kind"] == "restore" and answer["plan"] == plan.json()["plan"]
    assert sb.refs(ws.slug, "repo-0") == {**before, restored: feature}
    _, job = run(ws, repo["uuid"], {**body, "mode": "overwrite"})
    assert job["state"] == "succeeded"
    assert sb.refs(ws.slug, "repo-0") == {**before, restored: feature, "refs/heads/feature": feature}
    again = restores(ws, repo["uuid"], body).json()["plan"]
    assert [a["action"] for a in again] == ["skip"]  # the branch is back: nothing left to do


def test_force_pushed_branch_is_put_back_to_its_earlier_tip(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1, commits=3)
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    old = snap["refs"]["refs/heads/main"]
    rewritten = sb.force_push(ws.slug, "repo-0", branch="main")
    wait_backed_up(stack, ws, "repo-0")
    answer, job = run(ws, repo["uuid"], {"snapshot_id": snap["id"], "mode": "overwrite"})
    assert answer["plan"] == [{"ref": "refs/heads/main", "action": "update", "from": rewritten, "to": old,
                               "target_ref": "refs/heads/main"}]
    assert job["state"] == "succeeded" and sb.refs(ws.slug, "repo-0")["refs/heads/main"] == old
    latest = wait_backed_up(stack, ws, "repo-0")  # the restored state is itself backed up
    assert snapshots(ws, latest["uuid"])[0]["refs"]["refs/heads/main"] == old
    kept = wait_for(lambda: restores(ws, repo["uuid"], {"snapshot_id": snap["id"]}).json()["plan"], 10)
    assert kept[0]["action"] == "skip"


def test_a_deleted_repository_is_recreated_with_every_branch_and_tag(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.commit(ws.slug, "repo-0", branch="develop")
    sb.create_tag(ws.slug, "repo-0", "v1", annotated=True, message="release 1")
    sb.create_tag(ws.slug, "repo-0", "light")
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    deleted_upstream(stack, ws, "repo-0")
    same = restores(ws, repo["uuid"], {"snapshot_id": snap["id"]})
    assert same.status_code == 409 and same.json()["error"]["code"] == "conflict"
    answer, job = run(ws, repo["uuid"], {"snapshot_id": snap["id"], "target": {"kind": "new"}})
    assert answer["target"] == {"kind": "new", "name": "repo-0", "full_name": f"{ws.slug}/repo-0"}
    assert {a["action"] for a in answer["plan"]} == {"create"} and len(answer["plan"]) == 4
    assert job["state"] == "succeeded", job
    assert sb.refs(ws.slug, "repo-0") == snap["refs"]  # annotated tag objects included
    recreated = wait_for(lambda: [r for r in ws.api.get("/api/v1/repositories").json()["values"]
                                  if r["slug"] == "repo-0" and not r["deleted_upstream"] and r["snapshot_count"]],
                         60, message="the recreated repository backed up")
    assert recreated[0]["uuid"] != repo["uuid"]  # a new repository on Bitbucket, with its own backups
    taken = restores(ws, repo["uuid"], {"snapshot_id": snap["id"], "target": {"kind": "new"}})
    assert taken.status_code == 409 and "already exists" in taken.json()["error"]["message"]


def test_workspace_recovery_recreates_every_deleted_repository_and_isolates_a_failure(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=3)
    views = {slug: wait_backed_up(stack, ws, slug) for slug in ("repo-0", "repo-1", "repo-2")}
    refs = {slug: snapshots(ws, view["uuid"])[0]["refs"] for slug, view in views.items()}
    deleted_upstream(stack, ws, "repo-0", "repo-1", "repo-2")
    dry = ws.api.post("/api/v1/recoveries", {"repositories": "deleted"})
    assert dry.status_code == 200 and "job" not in dry.json()
    assert sorted((p["repository"]["slug"], p["action"], p["target"]["kind"]) for p in dry.json()["plan"]) == [
        ("repo-0", "restore", "new"), ("repo-1", "restore", "new"), ("repo-2", "restore", "new")]
    with damaged(vault_of(stack, views["repo-1"]["uuid"])):
        started = ws.api.post("/api/v1/recoveries", {"repositories": "deleted", "dry_run": False})
        assert started.status_code == 202, started.text
        job = finished(ws, started.json()["job"]["id"], timeout=120)
    assert job["kind"] == "recovery" and job["state"] == "failed" and job["error"] == "1 of 3 repositories failed"
    items = {i["repository"]["slug"]: i for i in job["items"]}
    assert {s: i["state"] for s, i in items.items()} == {"repo-0": "done", "repo-1": "failed", "repo-2": "done"}
    assert "damaged" in items["repo-1"]["error"]
    assert sb.refs(ws.slug, "repo-0") == refs["repo-0"] and sb.refs(ws.slug, "repo-2") == refs["repo-2"]
    assert sb.find_repository(sb.workspace(ws.slug), "repo-1") is None  # nothing half-made on Bitbucket
    audit = ws.api.get("/api/v1/audit", params="action=recovery").json()["values"]
    assert audit[0]["details"]["job"] == job["id"] and len(audit[0]["details"]["repositories"]) == 3


def test_a_recovery_resumes_after_its_worker_is_killed(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=2)
    refs = {slug: snapshots(ws, wait_backed_up(stack, ws, slug)["uuid"])[0]["refs"] for slug in ("repo-0", "repo-1")}
    deleted_upstream(stack, ws, "repo-0", "repo-1")
    sb.git_delay = 1.0  # every ls-remote now takes a second: time to kill the worker in the middle of an item
    try:
        job_id = ws.api.post("/api/v1/recoveries", {"repositories": "deleted", "dry_run": False}).json()["job"]["id"]
        wait_for(lambda: any(i["state"] == "running" for i in ws.api.get(f"/api/v1/jobs/{job_id}").json()["items"]),
                 30, 0.05, message="an item running")
        os.killpg(stack.worker.proc.pid, signal.SIGKILL)  # the whole worker: its queued batons are gone too
        stack.worker.proc.wait()
        dead = [i for i in ws.api.get(f"/api/v1/jobs/{job_id}").json()["items"] if i["state"] == "running"]
    finally:
        sb.git_delay = 0.0
        if stack.worker.proc.poll() is not None:  # restart the same object: the session teardown stops it
            stack.worker.stop()  # already dead: this only closes its log
            stack.worker.log_path = stack.settings.data_dir / "worker-restarted.log"
            stack.worker.start()
    assert dead  # the database still says running: only the free lock tells that the runner is gone
    job = finished(ws, job_id, timeout=120)
    assert job["state"] == "succeeded", job
    resumed = {i["repository"]["slug"]: i["attempts"] for i in job["items"]}
    assert resumed[dead[0]["repository"]["slug"]] >= 2
    assert {slug: sb.refs(ws.slug, slug) for slug in refs} == refs


def test_a_dry_run_changes_nothing_on_the_host(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=2)
    sb.commit(ws.slug, "repo-0", branch="feature")
    repo = wait_backed_up(stack, ws, "repo-0")
    wait_backed_up(stack, ws, "repo-1")
    snap = snapshots(ws, repo["uuid"])[0]
    sb.delete_branch(ws.slug, "repo-0", "feature")
    sb.force_push(ws.slug, "repo-0", branch="main")
    wait_backed_up(stack, ws, "repo-0")
    before = {slug: sb.refs(ws.slug, slug) for slug in ("repo-0", "repo-1")}
    deliveries = len(sb.deliveries)
    for body in ({"snapshot_id": snap["id"]}, {"snapshot_id": snap["id"], "mode": "overwrite"},
                 {"snapshot_id": snap["id"], "target": {"kind": "new", "name": "repo-0-copy"}}):
        answer = restores(ws, repo["uuid"], body)
        assert answer.status_code == 200 and any(a["action"] != "skip" for a in answer.json()["plan"])
    assert ws.api.post("/api/v1/recoveries", {"repositories": "all", "mode": "overwrite"}).status_code == 200
    assert {slug: sb.refs(ws.slug, slug) for slug in ("repo-0", "repo-1")} == before
    assert sb.find_repository(sb.workspace(ws.slug), "repo-0-copy") is None
    assert len(sb.deliveries) == deliveries  # no push, no repository created: no webhook either
    assert ws.api.get("/api/v1/audit", params="action=restore").json()["size"] == 0


def test_bad_restore_requests_are_refused_and_change_nothing(install_workspace, stack):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    cases = [({"snapshot_id": snap["id"], "mode": "force"}, 400), ({"refs": ["refs/heads/main"]}, 400),
             ({"snapshot_id": "s-missing"}, 404), ({"snapshot_id": snap["id"], "refs": ["refs/heads/nope"]}, 422),
             ({"snapshot_id": snap["id"], "target": {"kind": "new", "name": "repo-0"}}, 409)]
    for body, status in cases:
        response = restores(ws, repo["uuid"], {**body, "dry_run": False})
        assert response.status_code == status, (body, response.text)
        assert set(response.json()["error"]) == {"code", "message"}
    assert ws.api.post(f"/api/v1/repositories/{repo['uuid']}/restores", None).status_code == 400
    other = install_workspace(repos=0)
    assert restores(other, repo["uuid"], {"snapshot_id": snap["id"]}).status_code == 404
    assert ws.api.get("/api/v1/audit", params="action=restore").json()["size"] == 0


def test_a_snapshot_bundle_verifies_and_clones(install_workspace, stack, tmp_path):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.create_tag(ws.slug, "repo-0", "v1", annotated=True)
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[-1]
    sb.commit(ws.slug, "repo-0", message="after the snapshot")
    wait_backed_up(stack, ws, "repo-0")
    response = ws.api.get(f"/api/v1/repositories/{repo['uuid']}/snapshots/{snap['id']}/bundle")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-git-bundle"
    assert snap["id"] in response.headers["Content-Disposition"]
    bundle = tmp_path / "snapshot.bundle"
    bundle.write_bytes(response.content)
    git("init", "--quiet", "--bare", str(tmp_path / "empty.git"))
    assert git("bundle", "verify", str(bundle), cwd=tmp_path / "empty.git").returncode == 0
    git("clone", "--quiet", "--mirror", str(bundle), str(tmp_path / "clone.git"))
    assert show_ref(tmp_path / "clone.git") == snap["refs"]
    assert ws.api.get(f"/api/v1/repositories/{repo['uuid']}/snapshots/nope/bundle").status_code == 404
    entry = ws.api.get("/api/v1/audit", params="action=export").json()["values"][0]
    assert entry["target"] == f"{ws.slug}/repo-0" and entry["details"]["snapshot"] == snap["id"]
    assert not list((vault_of(stack, repo["uuid"]) / "strongroom" / "tmp").glob("*download*"))


def test_export_works_with_bitbucket_web_and_worker_out_of_the_picture(install_workspace, stack, tmp_path):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.commit(ws.slug, "repo-0", branch="feature")
    repo = wait_backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    copy = tmp_path / "data"
    vault = vault_of(stack, repo["uuid"])
    shutil.copytree(vault, copy / "vaults" / vault.parent.name / vault.name, symlinks=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no database, broker or Strongroom settings
    sb.set_down(True)
    try:
        result = subprocess.run([sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(copy),
                                 "--workspace", ws.slug, "--repository", "repo-0", "--to", str(tmp_path / "out.git")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        sb.set_down(False)
    assert result.returncode == 0, result.stderr
    assert show_ref(tmp_path / "out.git") == snap["refs"]
    assert git("fsck", "--no-dangling", cwd=tmp_path / "out.git").returncode == 0
    copied = (copy / "audit" / "offline-exports.jsonl").read_text()  # a copy records into itself
    assert ws.api.get("/api/v1/audit", params="action=export").json()["size"] == 0
    live = subprocess.run([sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(stack.settings.data_dir),
                           "--workspace", ws.slug, "--repository", "repo-0", "--bundle", str(tmp_path / "live.bundle")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert live.returncode == 0 and not live.stderr, live.stderr
    (entry,) = ws.api.get("/api/v1/audit", params="action=export").json()["values"]  # imported when listed
    assert entry["target"] == f"{ws.slug}/repo-0" and entry["actor"].startswith("offline:")
    assert entry["details"]["offline"] is True and entry["details"]["snapshot"] == snap["id"]
    assert entry["details"]["format"] == "bundle" and entry["details"]["destination"] == str(tmp_path / "live.bundle")
    with open(stack.settings.data_dir / "audit" / "offline-exports.jsonl", "a") as log:
        log.write(copied)  # the copy's line, appended to the live log by hand, is imported once too
    log = ws.api.get("/api/v1/audit", params="action=export").json()
    assert log["size"] == 2 and [e["details"]["format"] for e in log["values"]] == ["bundle", "repository"]


def test_drills_prove_a_repository_restorable_and_catch_problems(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    assert repo["last_verified_at"] is None and repo["last_verify_ok"] is None

    def drill() -> tuple[dict, dict]:
        response = ws.api.post(f"/api/v1/repositories/{repo['uuid']}/drills")
        assert response.status_code == 202, response.text
        return finished(ws, response.json()["job"]["id"]), repos_by_slug(ws)["repo-0"]

    job, view = drill()
    assert job["state"] == "succeeded" and view["last_verify_ok"] is True and view["last_verified_at"]
    sb.commit(ws.slug, "repo-0", message="a push whose webhook was lost", deliver=False)
    job, view = drill()
    assert job["state"] == "failed" and view["last_verify_ok"] is False
    assert "differs from Bitbucket" in view["last_verify_error"]
    wait_backed_up(stack, ws, "repo-0")  # the drill asked for a backup, which catches up
    with damaged(vault_of(stack, repo["uuid"])):
        job, view = drill()
    assert job["state"] == "failed" and "scratch repository" in view["last_verify_error"]
    job, view = drill()
    assert job["state"] == "succeeded" and view["last_verify_ok"] is True and view["last_verify_error"] is None
    assert not list((stack.settings.data_dir / "drills").iterdir())  # scratch copies are removed


def test_the_audit_log_records_who_changed_what(install_workspace, stack):
    ws = install_workspace(repos=1)
    repo = wait_backed_up(stack, ws, "repo-0")
    token = ws.api.post("/api/v1/access-tokens", {"label": "ci", "expires_in_days": 1}).json()
    ws.api.delete(f"/api/v1/access-tokens/{token['id']}")
    ws.api.put(f"/api/v1/repositories/{repo['uuid']}/scope", {"in_scope": False})
    ws.api.put("/api/v1/scope", {"mode": "selected"})
    log = ws.api.get("/api/v1/audit", params="pagelen=3").json()
    assert log["size"] == 4 and len(log["values"]) == 3 and "next" in log
    newest_first = [e["action"] for e in log["values"]]
    assert newest_first == ["scope.mode", "scope.repository", "access_token.revoke"]
    assert {e["actor"] for e in log["values"]} == {f"connect:{ws.client_key}"}
    assert log["values"][0]["details"] == {"from": "all", "to": "selected"}
    assert ws.api.get("/api/v1/audit", params="action=bogus").status_code == 400
    assert install_workspace(repos=0).api.get("/api/v1/audit").json()["size"] == 0


def workspace_with_settings(stack, repositories: dict[str, dict], projects=("PLAT", "OPS")):
    """A fresh workspace whose repositories (slug -> sandbox settings and ``branches``, pushed in that order:
    the first becomes the main branch) exist before Strongroom is installed, so the install's inventory
    records their settings."""
    sb = stack.sandbox
    slug = f"ws-{secrets.token_hex(3)}"
    sb.create_workspace(slug, name=f"Workspace {slug}")
    for key in projects:
        sb.create_project(slug, key, f"Project {key}")
    for name, spec in repositories.items():
        spec = dict(spec)
        branches = spec.pop("branches")
        sb.create_repository(slug, name, commits=0, **spec)
        for branch in branches:
            sb.commit(slug, name, branch=branch, message=f"work on {branch}")
        sb.create_tag(slug, name, "v1", annotated=True, message="release 1")
    inst = sb.install(slug, f"{stack.base_url}/atlassian-connect.json")
    return SimpleNamespace(slug=slug, api=ApiClient(stack.base_url, HostSigner(inst["client_key"], inst["shared_secret"])))


def host_settings(stack, ws, slug: str) -> dict:
    """What the sandbox host shows for a repository: its settings and its main branch."""
    r = stack.sandbox.repository(ws.slug, slug)
    return {"project": r.project_key, "is_private": r.is_private, "description": r.description,
            "language": r.language, "fork_policy": r.fork_policy, "mainbranch": gitops.default_branch(r.path)}


def test_a_recovered_repository_gets_its_project_privacy_description_and_main_branch_back(stack):
    api = {"project": "PLAT", "description": "The platform API", "is_private": False, "language": "python",
           "fork_policy": "no_forks", "branches": ["develop", "alpha", "main"]}  # main branch: develop
    core = {"project": "PLAT", "description": "Core services", "is_private": True, "branches": ["trunk", "feature"]}
    ws = workspace_with_settings(stack, {"api": api, "core": core})
    before = {slug: host_settings(stack, ws, slug) for slug in ("api", "core")}
    assert before["api"]["mainbranch"] == "develop" and before["core"]["mainbranch"] == "trunk"
    views = {slug: wait_backed_up(stack, ws, slug) for slug in ("api", "core")}
    assert views["api"]["settings"] == {"description": "The platform API", "is_private": False, "language": "python",
                                        "fork_policy": "no_forks", "project": {"key": "PLAT", "name": "Project PLAT"},
                                        "mainbranch": "develop"}
    assert views["core"]["settings"]["mainbranch"] == "trunk" and views["core"]["settings"]["is_private"] is True
    manifest = json.loads((vault_of(stack, views["api"]["uuid"]) / "strongroom" / "manifest.json").read_text())
    assert manifest["repository"]["settings"] == views["api"]["settings"]  # for the offline export and by hand
    refs = {slug: snapshots(ws, view["uuid"])[0]["refs"] for slug, view in views.items()}
    deleted_upstream(stack, ws, "api", "core")

    dry = ws.api.post("/api/v1/recoveries", {"repositories": "deleted"}).json()
    plans = {p["repository"]["slug"]: p for p in dry["plan"]}
    # The Connect app may not read projects (no `project` scope) and no repository is left in PLAT to prove
    # it exists: the project is tried, unconfirmed.
    assert plans["api"]["settings"] == {"is_private": False, "description": "The platform API", "language": "python",
                                        "fork_policy": "no_forks", "mainbranch": "develop",
                                        "project": {"key": "PLAT", "name": "Project PLAT", "confirmed": False}}
    assert plans["api"]["warnings"] == [] and plans["core"]["settings"]["is_private"] is True
    started = ws.api.post("/api/v1/recoveries", {"repositories": "deleted", "dry_run": False})
    assert started.status_code == 202, started.text
    job = finished(ws, started.json()["job"]["id"])
    assert job["state"] == "succeeded", job
    assert [i["warnings"] for i in job["items"]] == [[], []]
    for slug in ("api", "core"):
        assert host_settings(stack, ws, slug) == before[slug]  # same project, privacy, description, main branch
        assert stack.sandbox.refs(ws.slug, slug) == refs[slug]
        assert stack.sandbox.repository(ws.slug, slug).uuid != views[slug]["uuid"]  # a new repository


def test_a_repository_whose_project_was_deleted_comes_back_in_the_default_project_with_a_warning(stack):
    spec = {"project": "OPS", "description": "Runbooks", "is_private": True, "branches": ["main", "drafts"]}
    ws = workspace_with_settings(stack, {"runbooks": spec})
    view = wait_backed_up(stack, ws, "runbooks")
    refs = snapshots(ws, view["uuid"])[0]["refs"]
    deleted_upstream(stack, ws, "runbooks")
    stack.sandbox.delete_project(ws.slug, "OPS")
    answer, job = run(ws, view["uuid"], {"snapshot_id": snapshots(ws, view["uuid"])[0]["id"],
                                         "target": {"kind": "new"}})
    assert answer["settings"]["project"] == {"key": "OPS", "name": "Project OPS", "confirmed": False}
    assert job["state"] == "succeeded", job
    (item,) = job["items"]
    assert item["warnings"] == ["the repository is in project PROJ, not OPS: Bitbucket refused project OPS (deleted?)"]
    assert host_settings(stack, ws, "runbooks") == {"project": "PROJ", "is_private": True, "description": "Runbooks",
                                                     "language": "", "fork_policy": "no_public_forks",
                                                     "mainbranch": "main"}
    assert stack.sandbox.refs(ws.slug, "runbooks") == refs


def test_settings_of_a_repository_created_after_install_are_known_without_a_sweep(install_workspace, stack):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    wait_backed_up(stack, ws, "repo-0")
    sb.create_repository(ws.slug, "late", commits=2, is_private=False, description="made after install",
                         language="go", fork_policy="no_forks")  # repo:created, then its first sync
    view = wait_backed_up(stack, ws, "late")
    assert view["settings"] == {"description": "made after install", "is_private": False, "language": "go",
                                "fork_policy": "no_forks", "mainbranch": "main",
                                "project": view["settings"]["project"]}
    assert view["settings"]["project"]["key"]  # the workspace's default project
    manifest = lambda: json.loads((vault_of(stack, view["uuid"]) / "strongroom" / "manifest.json").read_text())
    assert manifest()["repository"]["settings"] == view["settings"]  # written by that same first sync
    sb.update_repository(ws.slug, "late", description="renamed purpose")  # repo:updated carries the change
    wait_for(lambda: repos_by_slug(ws)["late"]["settings"]["description"] == "renamed purpose", 30,
             message="the repo:updated description recorded")
    sb.commit(ws.slug, "late", message="after the update")
    wait_backed_up(stack, ws, "late")
    assert manifest()["repository"]["settings"]["description"] == "renamed purpose"
