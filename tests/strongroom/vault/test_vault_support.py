"""Shared helpers for the vault tests: real git repositories and a threaded smart-HTTP server.

Imported by the test_vault_* modules (pytest puts this directory on sys.path). It holds no tests.
"""
from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from werkzeug.serving import make_server

from strongroom.errors import StrongroomError
from strongroom.vault import Vault, serve_git_http

WORKSPACE = "{6d5c7a3e-0b8e-4f57-9a55-2f0cf6f0a001}"
REPOSITORY = "{1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9}"


def fixture_env(home: Path) -> dict[str, str]:
    """Environment for building fixture repositories (not the code under test)."""
    return {
        "PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    }


class Git:
    """Runs git for fixtures and assertions, independent of strongroom.vault.git."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = fixture_env(home)

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True, input: bytes | None = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env=self.env, input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def ok(self, *args: str, cwd: Path | None = None) -> bool:
        return subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True).returncode == 0

    def refs(self, repo: Path, *prefixes: str) -> dict[str, str]:
        out = self("for-each-ref", "--format=%(objectname) %(refname)", *prefixes, cwd=repo)
        return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines())}


class Upstream:
    """A bare "origin" plus a working clone to commit, tag and (force-)push from."""

    def __init__(self, root: Path, git: Git) -> None:
        self.git = git
        self.origin = root / "origin.git"
        self.work = root / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.origin))
        git("init", "--quiet", "--initial-branch=main", str(self.work))
        git("remote", "add", "origin", str(self.origin), cwd=self.work)
        self._counter = 0

    @property
    def url(self) -> str:
        return self.origin.as_uri()

    def commit(self, branch: str = "main", files: dict[str, bytes] | None = None, message: str = "") -> str:
        """Commit on ``branch`` (created from the current HEAD if new) and return the commit id."""
        self._counter += 1
        if self.git.ok("rev-parse", "--verify", "--quiet", "HEAD", cwd=self.work):
            self._checkout(branch)
        else:
            self.git("checkout", "--quiet", "--orphan", branch, cwd=self.work)
        for name, data in (files or {f"file{self._counter}.txt": f"change {self._counter}\n".encode()}).items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.git("add", name, cwd=self.work)
        self.git("commit", "--quiet", "-m", message or f"commit {self._counter}", cwd=self.work)
        return self.git("rev-parse", "HEAD", cwd=self.work).strip()

    def _has(self, branch: str) -> bool:
        return self.git.ok("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=self.work)

    def _checkout(self, branch: str) -> None:
        if self._has(branch):
            self.git("checkout", "--quiet", branch, cwd=self.work)
        else:
            self.git("checkout", "--quiet", "-b", branch, cwd=self.work)

    def push(self, *refspecs: str, force: bool = False) -> None:
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", *refspecs, cwd=self.work)

    def delete(self, ref: str) -> None:
        """Delete a ref in the origin (even its current branch, which a push may not)."""
        self.git("update-ref", "-d", ref, cwd=self.origin)

    def reset_hard(self, branch: str, target: str) -> None:
        self._checkout(branch)
        self.git("reset", "--quiet", "--hard", target, cwd=self.work)

    def tag(self, name: str, target: str = "HEAD", annotated: bool = False, force: bool = False) -> None:
        args = ["tag", *(["-f"] if force else []), *(["-a", "-m", f"tag {name}"] if annotated else []), name, target]
        self.git(*args, cwd=self.work)

    def refs(self) -> dict[str, str]:
        return self.git.refs(self.origin, "refs/heads/", "refs/tags/")


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "home")


@pytest.fixture
def upstream(tmp_path: Path, git: Git) -> Upstream:
    up = Upstream(tmp_path / "upstream", git)
    up.commit("main")
    up.commit("main")
    up.commit("feature")
    up.tag("v1.0", "main", annotated=True)
    up.tag("light", "main")
    up.push("--all")
    up.push("--tags")
    return up


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vaults")


@pytest.fixture
def mirror(vault: Vault):
    return vault.open(vault.mirror_path(WORKSPACE, REPOSITORY))


# --- a tiny WSGI git server in a thread --------------------------------------------------------

Route = Callable[[str], "tuple[Path, str] | None"]


class GitServer:
    """Serves repositories through serve_git_http; records what it saw."""

    def __init__(self, repos: dict[str, Path], *, auth: tuple[str, str] | None = None,
                 status: int | None = None, throttle: float = 0.0) -> None:
        self.repos = repos
        self.auth = auth
        self.status = status
        self.throttle = throttle
        self.protocols: list[str | None] = []
        self.authorizations: list[str | None] = []
        self.statuses: list[int] = []

    def __call__(self, environ, start_response):
        self.authorizations.append(environ.get("HTTP_AUTHORIZATION"))
        if self.status is not None:
            return self._plain(start_response, self.status)
        if self.auth is not None and not self._authorized(environ):
            return self._plain(start_response, 401, [("WWW-Authenticate", 'Basic realm="Strongroom"')])
        path = environ.get("PATH_INFO", "")
        name, sep, service = path.lstrip("/").partition(".git")
        repo = self.repos.get(name)
        if repo is None or not sep:
            return self._plain(start_response, 404)
        self.protocols.append(environ.get("HTTP_GIT_PROTOCOL"))
        length = environ.get("CONTENT_LENGTH")
        try:
            response = serve_git_http(
                repo, service_path=service or "/", method=environ["REQUEST_METHOD"],
                query_string=environ.get("QUERY_STRING", ""), content_type=environ.get("CONTENT_TYPE"),
                content_encoding=environ.get("HTTP_CONTENT_ENCODING"), git_protocol=environ.get("HTTP_GIT_PROTOCOL"),
                body=environ["wsgi.input"], content_length=int(length) if length else None)
        except StrongroomError as exc:
            return self._plain(start_response, exc.status)
        self.statuses.append(response.status)
        start_response(f"{response.status} X", response.headers)
        return self._slow(response.body) if self.throttle else response.body

    def _slow(self, body: Iterator[bytes]) -> Iterator[bytes]:
        try:
            for chunk in body:
                for i in range(0, len(chunk), 8192):
                    yield chunk[i:i + 8192]
                    time.sleep(self.throttle)
        finally:
            close = getattr(body, "close", None)
            if close:
                close()

    def _authorized(self, environ) -> bool:
        user, password = self.auth  # type: ignore[misc]
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return environ.get("HTTP_AUTHORIZATION") == expected

    def _plain(self, start_response, status: int, headers: list | None = None):
        self.statuses.append(status)
        start_response(f"{status} X", [("Content-Type", "text/plain"), *(headers or [])])
        return [f"status {status}\n".encode()]


@contextmanager
def serving(app: GitServer) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
