"""The JWT grant, access tokens on REST, and git smart HTTP with `x-token-auth`."""
from __future__ import annotations

import base64
import time
from pathlib import Path

import requests
from atlassian_jwt.url_utils import hash_url

from sandbox import Sandbox

TOKEN_PATH = "/site/oauth2/access_token"


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _git_auth(token: str) -> list[str]:
    basic = base64.b64encode(f"x-token-auth:{token}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {basic}"]


def test_jwt_grant_gives_a_bearer_token_for_rest(installed) -> None:
    sb: Sandbox = installed.sandbox
    r = installed.exchange()
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "scopes", "expires_in", "token_type"}
    assert body["expires_in"] == 7200 and body["token_type"] == "bearer"
    assert set(body["scopes"].split()) == {"account", "repository", "repository:write", "pullrequest", "webhook"}
    listing = requests.get(f"{sb.api_url}/2.0/repositories/acme", headers=_bearer(body["access_token"]))
    assert listing.status_code == 200 and listing.json()["values"][0]["slug"] == "widget"


def test_jwt_grant_accepts_each_qsh_variant_but_not_a_wrong_one(installed) -> None:
    sb: Sandbox = installed.sandbox
    url = sb.web_url + TOKEN_PATH
    form = "grant_type=urn%3Abitbucket%3Aoauth2%3Ajwt"
    variants = {
        "plain": installed.token("POST", TOKEN_PATH),
        "with body params": installed.token("POST", f"{TOKEN_PATH}?{form}"),
        "no qsh": installed.token("POST", None),
    }
    for name, token in variants.items():
        r = requests.post(url, data=form, headers={"Authorization": f"JWT {token}",
                                                   "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, (name, r.text)
    wrong = installed.token("POST", "/site/oauth2/other")
    r = requests.post(url, data=form, headers={"Authorization": f"JWT {wrong}",
                                               "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # the scheme is case-sensitive, and Basic is not this grant
    lower = requests.post(url, data=form, headers={"Authorization": f"jwt {variants['plain']}",
                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert lower.status_code == 401
    bad_grant = requests.post(url, data={"grant_type": "client_credentials"},
                              headers={"Authorization": f"JWT {variants['plain']}"})
    assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "unsupported_grant_type"


def test_narrowed_scope_and_expired_tokens(installed) -> None:
    sb: Sandbox = installed.sandbox
    narrow = installed.exchange(scope="webhook").json()
    assert narrow["scopes"] == "webhook"
    r = requests.get(f"{sb.api_url}/2.0/repositories/acme", headers=_bearer(narrow["access_token"]))
    assert r.status_code == 403
    assert installed.exchange(scope="repository:admin").status_code == 400

    token = installed.exchange().json()["access_token"]
    sb.expire_tokens()
    assert requests.get(f"{sb.api_url}/2.0/repositories/acme", headers=_bearer(token)).status_code == 401
    fresh = installed.exchange().json()["access_token"]
    assert requests.get(f"{sb.api_url}/2.0/repositories/acme", headers=_bearer(fresh)).status_code == 200


def test_git_clone_with_x_token_auth(installed, run_git, tmp_path: Path) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_tag("acme", "widget", "v1", annotated=True, deliver=False)
    token = installed.exchange().json()["access_token"]
    dest = tmp_path / "clone"
    run_git(*_git_auth(token), "clone", "--mirror", f"{sb.web_url}/acme/widget.git", str(dest))
    heads = run_git("show-ref", cwd=dest).stdout.split("\n")
    assert {line.split()[1]: line.split()[0] for line in heads if line} == sb.refs("acme", "widget")

    # protocol v2 (what modern git negotiates) and Bearer both work, too
    out = run_git("-c", "protocol.version=2", "-c", f"http.extraHeader=Authorization: Bearer {token}",
                  "ls-remote", f"{sb.web_url}/acme/widget.git").stdout
    assert sb.refs("acme", "widget")["refs/heads/main"] in out


def test_anonymous_git_gets_the_basic_challenge(installed, run_git) -> None:
    sb: Sandbox = installed.sandbox
    r = requests.get(f"{sb.web_url}/acme/widget.git/info/refs", params={"service": "git-upload-pack"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Bitbucket.org HTTP"'
    proc = run_git("ls-remote", f"{sb.web_url}/acme/widget.git", check=False)
    assert proc.returncode != 0
    token = installed.exchange().json()["access_token"]
    wrong_user = base64.b64encode(f"someone:{token}".encode()).decode()
    r = requests.get(f"{sb.web_url}/acme/widget.git/info/refs", params={"service": "git-upload-pack"},
                     headers={"Authorization": f"Basic {wrong_user}"})
    assert r.status_code == 401


def test_git_push_needs_write_scope_and_fires_repo_push(installed, run_git, tmp_path: Path) -> None:
    sb: Sandbox = installed.sandbox
    work = tmp_path / "work"
    read_only = installed.exchange(scope="repository").json()["access_token"]
    writer = installed.exchange().json()["access_token"]
    run_git(*_git_auth(writer), "clone", f"{sb.web_url}/acme/widget.git", str(work))
    (work / "new.txt").write_text("hello\n")
    run_git("add", "new.txt", cwd=work)
    run_git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-m", "add new", cwd=work)
    old = sb.refs("acme", "widget")["refs/heads/main"]

    denied = run_git(*_git_auth(read_only), "push", "origin", "main", cwd=work, check=False)
    assert denied.returncode != 0 and sb.refs("acme", "widget")["refs/heads/main"] == old

    run_git(*_git_auth(writer), "push", "origin", "main", cwd=work)
    new = run_git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert sb.refs("acme", "widget")["refs/heads/main"] == new
    [push] = installed.webhooks("repo:push")
    [change] = push.body["data"]["push"]["changes"]
    assert (change["old"]["target"]["hash"], change["new"]["target"]["hash"]) == (old, new)
    assert change["commits"][0]["message"].strip() == "add new"


def test_other_workspace_repo_over_git_is_404(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_workspace("rival")
    sb.create_repository("rival", "secret", deliver=False)
    token = installed.exchange().json()["access_token"]
    r = requests.get(f"{sb.web_url}/rival/secret.git/info/refs", params={"service": "git-upload-pack"},
                     headers=_bearer(token))
    assert r.status_code == 404


def test_repository_bound_token(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_repository("acme", "other", deliver=False)
    widget = sb.repository("acme", "widget")
    token = installed.exchange(bitbucket_repository=widget.uuid).json()["access_token"]
    ok = requests.get(f"{sb.api_url}/2.0/repositories/acme/widget", headers=_bearer(token))
    assert ok.status_code == 200
    assert requests.get(f"{sb.api_url}/2.0/repositories/acme/other", headers=_bearer(token)).status_code == 404


def test_git_delay_slows_upload_pack(installed, run_git, tmp_path: Path) -> None:
    sb: Sandbox = installed.sandbox
    token = installed.exchange().json()["access_token"]
    sb.git_delay = 0.3
    started = time.monotonic()
    run_git(*_git_auth(token), "clone", "--bare", f"{sb.web_url}/acme/widget.git", str(tmp_path / "slow"))
    assert time.monotonic() - started >= 0.3
    assert hash_url("GET", "/") == hash_url("GET", "")  # sanity: atlassian_jwt is the real one
