"""Read-only git smart HTTP, served by the real ``git http-backend`` run as a CGI.

Only upload-pack (clone/fetch) is served. Receive-pack (push) is refused before git starts, and
``http.receivepack=false`` refuses it again inside git. Refs under ``refs/strongroom/`` are hidden
from the advertisement in protocol v0 and v2 (``uploadpack.hideRefs``).

Note: with protocol v2, git 2.39's upload-pack honours a ``want`` of any object present in the
repository (allowAnySHA1InWant is not enforced in v2), so a client that already knows an object
id can fetch it even when only a hidden ref reaches it. Such objects are always this same
repository's own history, which the same credentials can read through its snapshot URLs anyway.
"""
from __future__ import annotations

import io
import logging
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, cast
from urllib.parse import parse_qs

from ..errors import Forbidden, NotFound
from .git import kill_process_group, popen_git

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
_SERVE_CONFIG = (
    ("http.receivepack", "false"),
    ("http.uploadpack", "true"),
    ("http.getanyfile", "false"),
    ("uploadpack.hideRefs", "refs/strongroom"),
    ("uploadpack.allowAnySHA1InWant", "false"),
    ("uploadpack.allowTipSHA1InWant", "false"),
    ("uploadpack.allowReachableSHA1InWant", "false"),
)
_PROTOCOL = re.compile(r"^[A-Za-z0-9=:._-]{1,200}$")
_STDERR_LIMIT = 8192


@dataclass(frozen=True)
class GitHttpResponse:
    """A CGI response from git http-backend: status, headers and a streamed body."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


def serve_git_http(repo_path: Path, *, service_path: str, method: str, query_string: str,
                   content_type: str | None, content_encoding: str | None, git_protocol: str | None,
                   body: BinaryIO, content_length: int | None) -> GitHttpResponse:
    """Answer one smart-HTTP request for ``repo_path`` (read-only; Forbidden for any push).

    ``body`` is read only for POST: ``content_length`` bytes, or up to EOF when it is None (a
    chunked request the WSGI server has de-chunked). Iterate or close ``body`` of the response:
    closing it early kills git.
    """
    _refuse(service_path, query_string)
    env = _cgi_env(repo_path, service_path, method, query_string, content_type, content_encoding,
                   git_protocol, content_length)
    proc = popen_git(["http-backend"], cwd=repo_path.parent, env=env)
    stderr = bytearray()
    drain = threading.Thread(target=_drain, args=(proc, stderr), daemon=True)
    drain.start()
    if method.upper() in ("POST", "PUT"):
        # A thread, so a request body larger than the pipe buffer cannot deadlock us. It is not
        # joined: once git has answered, a client still sending has nothing more to say.
        threading.Thread(target=_feed, args=(body, proc, content_length), daemon=True).start()
    else:
        _stdin(proc).close()
    try:
        status, headers = _read_headers(proc)
    except BaseException:
        _finish(proc, drain)
        raise
    return GitHttpResponse(status, headers, _stream(proc, drain, stderr))


def _refuse(service_path: str, query_string: str) -> None:
    if not service_path.startswith("/") or ".." in service_path or "\x00" in service_path:
        raise NotFound("no such git path")
    services = parse_qs(query_string or "").get("service", [])
    if service_path.rstrip("/").endswith("git-receive-pack") or "git-receive-pack" in services:
        raise Forbidden("backups are read-only: push is not allowed")


def _cgi_env(repo_path: Path, service_path: str, method: str, query_string: str, content_type: str | None,
             content_encoding: str | None, git_protocol: str | None, content_length: int | None) -> dict[str, str]:
    env = {
        "GIT_PROJECT_ROOT": str(repo_path.parent.resolve()),
        "PATH_INFO": f"/{repo_path.name}{service_path}",
        "REQUEST_METHOD": method.upper(),
        "QUERY_STRING": query_string or "",
        "CONTENT_TYPE": content_type or "",
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_COUNT": str(len(_SERVE_CONFIG)),
    }
    for i, (key, value) in enumerate(_SERVE_CONFIG):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    if content_length is not None:
        env["CONTENT_LENGTH"] = str(int(content_length))
    if content_encoding:
        env["HTTP_CONTENT_ENCODING"] = content_encoding
    if git_protocol and _PROTOCOL.match(git_protocol):
        # Newer http-backends read HTTP_GIT_PROTOCOL themselves; older ones need GIT_PROTOCOL.
        env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = git_protocol
    return env


def _feed(body: BinaryIO, proc: subprocess.Popen, content_length: int | None) -> None:
    """Copy the request body to git's stdin: ``content_length`` bytes, or up to EOF when None."""
    remaining = content_length
    try:
        while remaining is None or remaining > 0:
            chunk = body.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            _stdin(proc).write(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    except (BrokenPipeError, OSError, ValueError):
        pass  # git stopped reading (error answer, or killed); its response says why
    finally:
        try:
            _stdin(proc).close()
        except OSError:
            pass


def _drain(proc: subprocess.Popen, sink: bytearray) -> None:
    for line in _out(proc, "stderr"):
        if len(sink) < _STDERR_LIMIT:
            sink.extend(line[: _STDERR_LIMIT - len(sink)])


def _read_headers(proc: subprocess.Popen) -> tuple[int, list[tuple[str, str]]]:
    """Parse the CGI header block; ``Status:`` becomes the status code (default 200)."""
    status, headers = 200, cast(list[tuple[str, str]], [])
    while True:
        line = _out(proc, "stdout").readline()
        if not line:  # git died before answering
            return 502, [("Content-Type", "text/plain")]
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, headers
        name, _, value = text.partition(":")
        if name.strip().lower() == "status":
            status = int(value.strip().split(" ", 1)[0])
        else:
            headers.append((name.strip(), value.strip()))


def _stream(proc: subprocess.Popen, drain: threading.Thread, stderr: bytearray) -> Iterator[bytes]:
    try:
        while chunk := _out(proc, "stdout").read1(CHUNK_BYTES):
            yield chunk
        if proc.wait() != 0:
            drain.join(timeout=1)
            log.warning("git http-backend exited %s: %s", proc.returncode,
                        stderr.decode("utf-8", "replace").strip()[-500:])
    finally:
        _finish(proc, drain)


def _finish(proc: subprocess.Popen, drain: threading.Thread) -> None:
    """Reap git: kill it if the client went away mid-response, then close the pipes."""
    if proc.poll() is None:
        kill_process_group(proc)
        proc.wait()
    _out(proc, "stdout").close()
    drain.join(timeout=5)  # stderr reaches EOF once git and its children are gone
    _out(proc, "stderr").close()


def _stdin(proc: subprocess.Popen) -> io.BufferedWriter:
    return cast(io.BufferedWriter, proc.stdin)


def _out(proc: subprocess.Popen, name: str) -> io.BufferedReader:
    return cast(io.BufferedReader, getattr(proc, name))
