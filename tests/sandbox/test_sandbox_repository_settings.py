"""Repository settings on create/update (description, privacy, project, language, fork policy), projects
behind the `project` scope, and the main branch taken from the first branch pushed to an empty repository."""
from __future__ import annotations

import base64
import gzip
from pathlib import Path

import requests

from sandbox import Sandbox
from sandbox.githttp import pushed_refs

ADMIN_SCOPES = ["account", "repository", "repository:write", "repository:admin"]
ZERO = "0" * 40


def _git_auth(token: str) -> list[str]:
    basic = base64.b64encode(f"x-token-auth:{token}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {basic}"]


def _admin(sandbox: Sandbox, app, scopes=ADMIN_SCOPES):
    app.scopes = list(scopes)
    sandbox.create_workspace("acme")
    sandbox.create_project("acme", "PLAT", "Platform")
    sandbox.install("acme", app.descriptor_url)
    return app


def _work_commit(run_git, work: Path) -> str:
    run_git("init", "--quiet", str(work))
    run_git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "--quiet", "--allow-empty", "-m", "one",
            cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work).stdout.strip()


def test_create_accepts_and_renders_every_setting(sandbox, app) -> None:
    _admin(sandbox, app)
    body = {"scm": "git", "is_private": False, "description": "The platform API", "language": "Python",
            "fork_policy": "no_forks", "project": {"key": "PLAT"}}
    created = app.api("POST", "/2.0/repositories/acme/api", json_body=body)
    assert created.status_code == 200, created.text
    got = app.api("GET", "/2.0/repositories/acme/api").json()
    for repo in (created.json(), got):
        assert (repo["is_private"], repo["description"], repo["language"], repo["fork_policy"]) == \
            (False, "The platform API", "python", "no_forks")
        assert repo["project"]["key"] == "PLAT" and repo["project"]["name"] == "Platform"
        assert repo["mainbranch"] is None  # empty: no main branch yet
    listed = app.api("GET", "/2.0/repositories/acme", params={"q": 'project.key="PLAT"'}).json()["values"]
    assert [r["slug"] for r in listed] == ["api"]
    default = app.api("POST", "/2.0/repositories/acme/plain", json_body={"scm": "git"}).json()
    assert default["is_private"] is True and default["project"]["key"] == "PROJ"
    assert default["fork_policy"] == "no_public_forks" and default["language"] == ""


def test_an_unknown_project_or_a_bad_setting_is_a_400_and_creates_nothing(sandbox, app) -> None:
    _admin(sandbox, app)
    for body in ({"project": {"key": "GONE"}}, {"project": "PLAT"}, {"fork_policy": "sometimes"},
                 {"is_private": "yes"}, {"description": 5}):
        r = app.api("POST", "/2.0/repositories/acme/api", json_body=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["type"] == "error" and r.json()["error"]["message"]
    assert sandbox.find_repository(sandbox.workspace("acme"), "api") is None


def test_projects_need_the_project_scope(sandbox, app) -> None:
    _admin(sandbox, app)  # the app did not ask for `project`
    denied = app.api("GET", "/2.0/workspaces/acme/projects/PLAT")
    assert denied.status_code == 403 and "scope" in denied.json()["error"]["message"]
    assert app.api("GET", "/2.0/workspaces/acme/projects").status_code == 403
    token = sandbox.issue_access_token("acme", scopes=["repository", "project"])
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{sandbox.api_url}/2.0/workspaces/acme/projects/PLAT", headers=headers).json()["key"] == "PLAT"
    assert requests.get(f"{sandbox.api_url}/2.0/workspaces/acme/projects/GONE", headers=headers).status_code == 404


def test_only_an_empty_non_default_project_can_be_deleted(sandbox, app) -> None:
    _admin(sandbox, app)
    sandbox.create_repository("acme", "api", project="PLAT", deliver=False)
    for key in ("PLAT", "PROJ"):  # holds a repository; the default project
        try:
            sandbox.delete_project("acme", key)
        except ValueError:
            continue
        raise AssertionError(f"{key} was deleted")
    sandbox.delete_repository("acme", "api", deliver=False)
    sandbox.delete_project("acme", "PLAT")
    assert "PLAT" not in sandbox.workspace("acme").projects


def test_the_first_branch_pushed_to_an_empty_repository_becomes_the_main_branch(sandbox, app, run_git,
                                                                               tmp_path) -> None:
    _admin(sandbox, app)
    app.api("POST", "/2.0/repositories/acme/api", json_body={"scm": "git"})
    token = app.exchange().json()["access_token"]
    work, url = tmp_path / "work", f"{sandbox.web_url}/acme/api.git"
    sha = _work_commit(run_git, work)
    run_git(*_git_auth(token), "push", url, f"{sha}:refs/heads/develop", cwd=work)
    assert app.api("GET", "/2.0/repositories/acme/api").json()["mainbranch"] == {"type": "branch", "name": "develop"}
    run_git(*_git_auth(token), "push", url, f"{sha}:refs/heads/main", f"{sha}:refs/heads/alpha", cwd=work)
    assert app.api("GET", "/2.0/repositories/acme/api").json()["mainbranch"]["name"] == "develop"  # stays
    # PUT cannot change it (BCLOUD-20340): mainbranch is ignored
    app.api("PUT", "/2.0/repositories/acme/api", json_body={"mainbranch": {"name": "main"}})
    assert app.api("GET", "/2.0/repositories/acme/api").json()["mainbranch"]["name"] == "develop"


def test_with_several_branches_in_the_first_push_the_first_one_sent_wins(sandbox, app, run_git, tmp_path) -> None:
    _admin(sandbox, app)
    app.api("POST", "/2.0/repositories/acme/api", json_body={"scm": "git"})
    token = app.exchange().json()["access_token"]
    work = tmp_path / "work"
    sha = _work_commit(run_git, work)
    run_git(*_git_auth(token), "push", f"{sandbox.web_url}/acme/api.git", f"{sha}:refs/tags/v1",
            f"{sha}:refs/heads/zeta", f"{sha}:refs/heads/alpha", f"{sha}:refs/heads/main", cwd=work)
    assert app.api("GET", "/2.0/repositories/acme/api").json()["mainbranch"]["name"] == "zeta"
    assert sandbox.refs("acme", "api")["refs/heads/alpha"] == sha


def test_helpers_follow_the_same_rule(sandbox, app) -> None:
    _admin(sandbox, app)
    sandbox.create_repository("acme", "empty", commits=0, deliver=False)
    sandbox.commit("acme", "empty", branch="develop", deliver=False)
    sandbox.commit("acme", "empty", branch="main", deliver=False)
    assert app.api("GET", "/2.0/repositories/acme/empty").json()["mainbranch"]["name"] == "develop"
    sandbox.create_repository("acme", "usual", commits=2, deliver=False)  # created with main, as before
    sandbox.commit("acme", "usual", branch="develop", deliver=False)
    assert app.api("GET", "/2.0/repositories/acme/usual").json()["mainbranch"]["name"] == "main"


def test_pushed_refs_reads_the_command_list_in_order() -> None:
    def pkt(line: bytes) -> bytes:
        return b"%04x" % (len(line) + 4) + line

    body = (pkt(b"shallow " + b"a" * 40 + b"\n")
            + pkt(f"{ZERO} {'b' * 40} refs/heads/zeta".encode() + b"\0report-status atomic\n")
            + pkt(f"{ZERO} {'b' * 40} refs/heads/alpha\n".encode()) + b"0000" + b"PACK\x00\x00\x00\x02")
    assert pushed_refs(body) == ["refs/heads/zeta", "refs/heads/alpha"]
    assert pushed_refs(gzip.compress(body), "gzip") == ["refs/heads/zeta", "refs/heads/alpha"]
    assert pushed_refs(b"") == [] and pushed_refs(b"zzzz") == []
