"""The choke point: clean environment, credentials via env only, error classes, timeouts."""
from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import pytest

from strongroom.errors import (
    CredentialRejected,
    GitError,
    GitPermanentError,
    GitTransientError,
    InvalidInput,
    RepositoryGone,
)
from strongroom.vault import GitCredentials, RefNameConflict, run_git
from strongroom.vault.git import classify_failure
from strongroom.vault.mirror import check_remote_url

from test_vault_support import GitServer, mirror, serving, upstream, vault, git  # noqa: F401


def test_credentials_env_carries_a_basic_extra_header_and_resets_helpers():
    env = GitCredentials("x-token-auth", "s3cr3t:pw").env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    token = env["GIT_CONFIG_VALUE_0"].removeprefix("Authorization: Basic ")
    assert base64.b64decode(token).decode() == "x-token-auth:s3cr3t:pw"
    pairs = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))}
    assert pairs["credential.helper"] == ""
    assert pairs["http.followRedirects"] == "false"
    assert env["GIT_TERMINAL_PROMPT"] == "0"


def test_credentials_repr_hides_the_password():
    creds = GitCredentials("user", "hunter2-secret")
    assert "hunter2-secret" not in repr(creds)
    assert "hunter2-secret" not in str(creds)


def test_run_git_starts_from_a_clean_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_ASKPASS", "/bin/evil-askpass")
    monkeypatch.setenv("STRONGROOM_SECRET_KEY", "do-not-leak")
    out = run_git(["-c", "alias.envdump=!env", "envdump"], cwd=tmp_path).text
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["LC_ALL"] == "C"
    assert env.get("GIT_ASKPASS") == ""
    assert "STRONGROOM_SECRET_KEY" not in env
    assert env.get("GIT_DIR") != str(tmp_path / "elsewhere")


def test_run_git_returns_output_and_reports_failure_when_unchecked(tmp_path: Path):
    assert run_git(["version"]).text.startswith("git version")
    result = run_git(["rev-parse", "--verify", "nope"], cwd=tmp_path, check=False)
    assert result.returncode != 0 and result.stderr


def test_run_git_raises_a_classified_error(tmp_path: Path):
    with pytest.raises(RepositoryGone):
        run_git(["ls-remote", (tmp_path / "missing.git").as_uri()])
    with pytest.raises(GitPermanentError) as excinfo:
        run_git(["init", "--bare", "--object-format=nonsense", str(tmp_path / "x")])
    assert excinfo.value.returncode and excinfo.value.stderr


def test_timeout_kills_the_whole_process_group(tmp_path: Path):
    pidfile = tmp_path / "pid"
    script = f"!sh -c 'echo $$ > {pidfile}; exec sleep 30'"
    started = time.monotonic()
    with pytest.raises(GitTransientError):
        run_git(["-c", f"alias.nap={script}", "nap"], cwd=tmp_path, timeout=1.0)
    assert time.monotonic() - started < 10
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the grandchild (sleep) survived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stderr, expected", [
    ("fatal: Authentication failed for 'https://bitbucket.org/ws/r.git/'", CredentialRejected),
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403", CredentialRejected),
    ("fatal: could not read Username for 'https://h': terminal prompts disabled", CredentialRejected),
    ("remote: Repository not found.\nfatal: repository 'https://h/r.git/' not found", RepositoryGone),
    ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 404", RepositoryGone),
    ("fatal: '/srv/x.git' does not appear to be a git repository", RepositoryGone),
    ("fatal: unable to access 'https://h/': The requested URL returned error: 502", GitTransientError),
    ("fatal: unable to access 'https://h/': Could not resolve host: h", GitTransientError),
    ("error: RPC failed; curl 28 Operation too slow\nfatal: early EOF", GitTransientError),
    ("error: cannot lock ref 'refs/heads/main': is at 1 but expected 2", GitTransientError),
    ("error: cannot lock ref 'refs/heads/a/b': 'refs/heads/a' exists; cannot create 'refs/heads/a/b'",
     RefNameConflict),
    ("fatal: bad object 123", GitPermanentError),
])
def test_stderr_is_classified_once_into_error_classes(stderr: str, expected: type):
    error = classify_failure("fetch", 128, stderr)
    assert type(error) is expected
    assert error.stderr == stderr


def test_classified_auth_and_gone_errors_are_not_git_errors():
    # Callers catching GitError for "retry or fail" must not swallow credential problems.
    assert not isinstance(classify_failure("fetch", 128, "Authentication failed"), GitError)
    assert not isinstance(classify_failure("fetch", 128, "Repository not found"), GitError)


@pytest.mark.parametrize("url", [
    "https://user:token@bitbucket.org/ws/repo.git", "ext::sh -c touch% /tmp/pwned", "-uhack",
    "ssh://git@bitbucket.org/ws/repo.git", "https://bitbucket.org/ws/repo .git",
])
def test_remote_urls_with_secrets_or_odd_schemes_are_refused(url: str):
    with pytest.raises(InvalidInput):
        check_remote_url(url)


def test_credentials_reach_the_server_as_a_header_and_never_argv(upstream, mirror, monkeypatch):
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(args, *a, **kw):
        seen.append(list(args))
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)
    app = GitServer({"repo": upstream.origin}, auth=("x-token-auth", "pa55-w0rd"))
    with serving(app) as base:
        refs = mirror.ls_remote(f"{base}/repo.git", GitCredentials("x-token-auth", "pa55-w0rd"))
        result = mirror.sync(f"{base}/repo.git", GitCredentials("x-token-auth", "pa55-w0rd"))
    assert refs == upstream.refs() == result.after
    assert any(a and a.startswith("Basic ") for a in app.authorizations)
    assert seen and not any("pa55-w0rd" in arg or "cGE1NS13MHJk" in arg for argv in seen for arg in argv)
    assert all(os.path.basename(argv[0]) == "git" for argv in seen)


def test_rejected_credentials_and_missing_repositories_and_outages_map_to_classes(upstream, mirror):
    with serving(GitServer({"repo": upstream.origin}, auth=("u", "right"))) as base:
        with pytest.raises(CredentialRejected):
            mirror.sync(f"{base}/repo.git", GitCredentials("u", "wrong"))
        with pytest.raises(CredentialRejected):
            mirror.ls_remote(f"{base}/repo.git", None)
    with serving(GitServer({}, status=404)) as base:
        with pytest.raises(RepositoryGone):
            mirror.sync(f"{base}/repo.git", GitCredentials("u", "p"))
    with serving(GitServer({}, status=503)) as base:
        with pytest.raises(GitTransientError):
            mirror.sync(f"{base}/repo.git", GitCredentials("u", "p"))
    assert mirror.live_refs() == {}


def test_the_credential_header_does_not_follow_a_redirect_to_another_host(upstream, mirror):
    target = GitServer({"repo": upstream.origin})
    with serving(target) as target_base:
        other_host = target_base.replace("127.0.0.1", "localhost")

        def redirect(environ, start_response):
            query = environ.get("QUERY_STRING")
            location = f"{other_host}{environ['PATH_INFO']}" + (f"?{query}" if query else "")
            start_response("302 Found", [("Location", location)])
            return [b""]

        with serving(redirect) as base:  # type: ignore[arg-type]
            with pytest.raises(GitPermanentError):
                mirror.ls_remote(f"{base}/repo.git", GitCredentials("u", "never-forwarded"))
            # Without credentials git's default redirect policy is harmless and still applies.
            assert mirror.ls_remote(f"{base}/repo.git", None) == upstream.refs()
    # With followRedirects left at git's default, git re-bases later requests on the redirect
    # target and sends the extra header there: this list would hold our Basic header.
    assert not any(target.authorizations)
