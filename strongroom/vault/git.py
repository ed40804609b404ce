"""The choke point: the only code in Strongroom that starts a git process.

Credentials reach git only through the environment (``GIT_CONFIG_COUNT`` + ``http.extraHeader``),
never argv or URLs. Git's stderr is classified into our error classes here, once; callers key on
the class only.
"""
from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import (
    CredentialRejected,
    GitError,
    GitPermanentError,
    GitTransientError,
    RepositoryGone,
    StrongroomError,
)

log = logging.getLogger(__name__)

# Inherited from the worker's environment; everything else (GIT_DIR, GIT_ASKPASS, GIT_TRACE_CURL,
# an operator's GIT_CONFIG_PARAMETERS ...) is dropped so a stray variable cannot redirect or leak.
_INHERITED = (
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_CONFIG_HOME",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
)
_BASE = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
    "LANGUAGE": "C",
    # An empty askpass is consulted instead of SSH_ASKPASS and skipped, so nothing can prompt.
    "GIT_ASKPASS": "",
}
# Argv-level config applied to every command: forget any credential helper from a global config,
# so git neither asks one for secrets nor hands ours to it for storage.
_ALWAYS = ("-c", "credential.helper=", "-c", "core.askPass=")
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class GitCredentials:
    """HTTP Basic credentials for one remote, handed to git through the environment only."""

    username: str
    password: str = field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that make git send these credentials and nothing else."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        pairs = [
            ("http.extraHeader", f"Authorization: Basic {token}"),
            ("credential.helper", ""),
            # Never follow redirects: curl drops the header on the redirected request itself, but
            # git then re-bases its later requests on the new URL and sends extraHeader there
            # directly (proven in test_vault_git). Clone URLs come from the host's API anyway.
            ("http.followRedirects", "false"),
        ]
        env = {"GIT_CONFIG_COUNT": str(len(pairs)), "GIT_TERMINAL_PROMPT": "0"}
        for i, (key, value) in enumerate(pairs):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env


@dataclass(frozen=True)
class GitResult:
    """What a finished git process returned."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")


class RefNameConflict(GitPermanentError):
    """A ref transaction cannot create a ref because another ref is in its path (D/F conflict)."""

    code = "git_ref_conflict"


@cache
def git_executable() -> str:
    """Absolute path of the git binary (resolved on first use, not at import)."""
    found = shutil.which("git")
    if not found:
        raise GitPermanentError("git is not installed")
    return found


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The clean environment every git process starts from, plus ``extra``."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(_BASE)
    if extra:
        env.update(extra)
    return env


def run_git(args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            input: bytes | None = None, timeout: float | None = None, check: bool = True) -> GitResult:
    """Run ``git <args>`` to completion; on failure (when ``check``) raise the classified error."""
    started = time.monotonic()
    proc = _spawn(args, cwd, env, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        proc.communicate()
        raise GitTransientError(f"git {_name(args)} timed out after {timeout}s", returncode=None) from None
    except BaseException:
        kill_process_group(proc)
        proc.wait()
        raise
    result = GitResult(proc.returncode, out, err.decode("utf-8", "replace"))
    log.debug("git %s exited %s in %.3fs", _name(args), proc.returncode, time.monotonic() - started)
    if check and proc.returncode != 0:
        raise classify_failure(_name(args), result.returncode, result.stderr)
    return result


def popen_git(args: Sequence[str], *, cwd: Path | None, env: Mapping[str, str] | None) -> subprocess.Popen:
    """Start ``git <args>`` with pipes on all three streams, in its own process group, for streaming."""
    return _spawn(args, cwd, env, stdin=subprocess.PIPE)


def _spawn(args: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None, *, stdin: int) -> subprocess.Popen:
    """The one place a git process starts: clean env, helper reset, own process group (for killpg)."""
    return subprocess.Popen([git_executable(), *_ALWAYS, *args], cwd=cwd, env=git_env(env), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of a git started here (git forks helpers: remote-http, pack-objects)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _name(args: Sequence[str]) -> str:
    """The subcommand, for messages: options and URLs stay out of logs."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-c", "-C"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "?"


_AUTH = re.compile(
    r"Authentication failed|returned error: 40[13]\b|could not read (Username|Password)"
    r"|terminal prompts disabled|Invalid username or password|HTTP Basic: Access denied"
    r"|Permission denied \(publickey", re.I)
_GONE = re.compile(
    r"repository .* not found|Repository not found|returned error: 404\b|returned error: 410\b"
    r"|does not appear to be a git repository|not a git repository|No such repository", re.I)
_CONFLICT = re.compile(r"exists; cannot create|cannot process '.*' and '.*' at the same time", re.I)
_TRANSIENT = re.compile(
    r"returned error: (5\d\d|429|408)\b|Could not resolve host|Failed to connect|Connection (timed out|"
    r"reset|refused)|Operation (timed out|too slow)|timed out|early EOF|remote end hung up|RPC failed"
    r"|unexpected disconnect|cannot lock ref|Unable to create '.*\.lock'|index-pack failed"
    r"|gnutls_handshake|SSL_connect|TLS connect error|No space left on device|Temporary failure"
    r"|Could not read from remote repository|transfer closed", re.I)


def classify_failure(command: str, returncode: int | None, stderr: str) -> GitError | StrongroomError:
    """Map a failed git command's stderr to one of our error classes."""
    tail = stderr.strip()[-_STDERR_TAIL:]
    last = tail.splitlines()[-1] if tail else f"exit status {returncode}"
    message = f"git {command} failed: {last}"
    error: StrongroomError
    if _AUTH.search(tail):
        error = CredentialRejected(message)
    elif _GONE.search(tail):
        error = RepositoryGone(message)
    elif _CONFLICT.search(tail):
        return RefNameConflict(message, returncode=returncode, stderr=tail)
    elif _TRANSIENT.search(tail):
        return GitTransientError(message, returncode=returncode, stderr=tail)
    else:
        return GitPermanentError(message, returncode=returncode, stderr=tail)
    # CredentialRejected/RepositoryGone are not GitErrors; keep the diagnostics on them anyway.
    vars(error).update(returncode=returncode, stderr=tail)
    return error
