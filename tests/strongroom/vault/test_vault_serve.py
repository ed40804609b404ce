"""Read-only smart HTTP through the real git http-backend: clone works, push never does."""
from __future__ import annotations

import io
from pathlib import Path
from urllib.request import urlopen
from urllib.error import HTTPError

import pytest

from strongroom.errors import Forbidden, NotFound
from strongroom.vault import serve_git_http

from test_vault_support import Git, GitServer, Upstream, git, mirror, serving, upstream, vault  # noqa: F401


def _ls_remote(git: Git, url: str, version: int) -> dict[str, str]:
    out = git("-c", f"protocol.version={version}", "ls-remote", url)
    return {name: oid for oid, name in (line.split("\t") for line in out.splitlines())}


@pytest.mark.parametrize("version", [0, 2])
def test_internal_refs_are_never_advertised(upstream: Upstream, mirror, git: Git, version: int):
    mirror.sync(upstream.url, None)
    upstream.delete("refs/heads/feature")
    mirror.sync(upstream.url, None)  # the old feature tip now lives only under refs/strongroom
    assert git("for-each-ref", "refs/strongroom/", cwd=mirror.path)
    app = GitServer({"repo": mirror.path})
    with serving(app) as base:
        advertised = _ls_remote(git, f"{base}/repo.git", version)
    assert not [ref for ref in advertised if ref.startswith("refs/strongroom")]
    assert {k: v for k, v in advertised.items() if not k.endswith("^{}") and k != "HEAD"} == mirror.live_refs()
    assert advertised["HEAD"] == mirror.live_refs()["refs/heads/main"]
    if version == 2:
        assert "version=2" in app.protocols
    else:
        assert not any(app.protocols)


@pytest.mark.parametrize("version", [0, 2])
def test_clone_of_latest_and_of_a_snapshot(upstream: Upstream, mirror, git: Git, tmp_path: Path, version: int):
    snapshot = mirror.sync(upstream.url, None).after
    upstream.commit("main")
    upstream.push("main")
    latest = mirror.sync(upstream.url, None).after
    view = mirror.snapshot_view("snap-1", snapshot)
    with serving(GitServer({"repo": mirror.path, "snap-1": view})) as base:
        git("-c", f"protocol.version={version}", "clone", "--quiet", f"{base}/repo.git", str(tmp_path / "latest"))
        git("-c", f"protocol.version={version}", "clone", "--quiet", "--mirror", f"{base}/snap-1.git",
            str(tmp_path / "snap.git"))
    work = tmp_path / "latest"
    assert git("rev-parse", "HEAD", cwd=work).strip() == latest["refs/heads/main"]
    assert git.refs(work, "refs/tags/") == {k: v for k, v in latest.items() if k.startswith("refs/tags/")}
    assert git.refs(tmp_path / "snap.git") == snapshot
    git("fsck", "--no-dangling", cwd=tmp_path / "snap.git")


def test_push_is_refused_and_changes_nothing(upstream: Upstream, mirror, git: Git, tmp_path: Path):
    mirror.sync(upstream.url, None)
    before = git.refs(mirror.path)
    app = GitServer({"repo": mirror.path})
    work = upstream.work
    upstream.commit("main")
    with serving(app) as base:
        assert not git.ok("push", f"{base}/repo.git", "main:refs/heads/main", cwd=work)
        assert not git.ok("push", f"{base}/repo.git", ":refs/heads/feature", cwd=work)
    assert 403 in app.statuses
    assert git.refs(mirror.path) == before


@pytest.mark.parametrize("service_path, query", [
    ("/info/refs", "service=git-receive-pack"), ("/git-receive-pack", ""), ("/git-receive-pack/", ""),
])
def test_receive_pack_is_forbidden_before_git_runs(mirror, service_path: str, query: str):
    with pytest.raises(Forbidden):
        serve_git_http(mirror.path, service_path=service_path, method="GET", query_string=query,
                       content_type=None, content_encoding=None, git_protocol=None, body=io.BytesIO(),
                       content_length=None)


def test_path_tricks_are_not_found(mirror):
    with pytest.raises(NotFound):
        serve_git_http(mirror.path, service_path="/../../etc/passwd", method="GET", query_string="",
                       content_type=None, content_encoding=None, git_protocol=None, body=io.BytesIO(),
                       content_length=None)


def test_dumb_http_file_access_is_off(upstream: Upstream, mirror):
    refs = mirror.sync(upstream.url, None).after
    view = mirror.snapshot_view("snap-1", refs)
    with serving(GitServer({"snap-1": view, "repo": mirror.path})) as base:
        for path in ("snap-1.git/objects/info/alternates", "repo.git/HEAD", "repo.git/packed-refs"):
            with pytest.raises(HTTPError) as excinfo:
                urlopen(f"{base}/{path}")
            assert excinfo.value.code in (403, 404)


def test_info_refs_response_parses_cgi_status_and_headers(upstream: Upstream, mirror):
    mirror.sync(upstream.url, None)
    response = serve_git_http(mirror.path, service_path="/info/refs", method="GET",
                              query_string="service=git-upload-pack", content_type=None,
                              content_encoding=None, git_protocol="version=2", body=io.BytesIO(),
                              content_length=None)
    body = b"".join(response.body)
    assert response.status == 200
    assert ("Content-Type", "application/x-git-upload-pack-advertisement") in response.headers
    assert b"version 2" in body and b"ls-refs" in body
    missing = serve_git_http(mirror.path.parent / "nope.git", service_path="/info/refs", method="GET",
                             query_string="service=git-upload-pack", content_type=None, content_encoding=None,
                             git_protocol=None, body=io.BytesIO(), content_length=None)
    assert missing.status == 404
    b"".join(missing.body)
