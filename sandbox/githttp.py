"""Git smart HTTP on `web_url`: `/{ws}/{repo}.git/...` through the real `git http-backend` (CGI).

Credentials: HTTP Basic `x-token-auth:<access token>` or `Authorization: Bearer <access token>`
(§4.4). Without them: 401 with the Basic challenge (git only sends credentials after one).
"""
from __future__ import annotations

import threading
import time
import zlib
from typing import TYPE_CHECKING, Iterator

from flask import Flask, Response, request

from . import gitops
from .auth import Principal, decode_basic, split_authorization
from .model import Repository, Workspace

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

CHALLENGE = 'Basic realm="Bitbucket.org HTTP"'
TOKEN_USER = "x-token-auth"  # "The literal string x-token-auth as a substitute for username is required"
SERVICES = {"git-upload-pack": "repository", "git-receive-pack": "repository:write"}
CHUNK = 64 * 1024
SLOW_CHUNK = 8 * 1024


def _text(status: int, body: str, headers: dict | None = None) -> Response:
    return Response(body + "\n", status=status, mimetype="text/plain", headers=headers or {})


def git_principal(sb: "Sandbox", header: str | None) -> Principal | None:
    """The token holder behind git credentials, or None."""
    parts = split_authorization(header)
    if parts is None:
        return None
    scheme, value = parts
    if scheme.lower() == "basic":
        creds = decode_basic(value)
        for provider in sb.principal_providers if creds else ():  # token mode, Forge system tokens
            principal = provider.git_principal(*creds)
            if principal is not None:
                return principal
        if creds is None or creds[0] != TOKEN_USER:
            return None
        value = creds[1]
    elif scheme != "Bearer":
        return None
    tok = sb.tokens.lookup(value)
    if tok is None or not sb.installation_usable(tok.client_key):
        return None
    return sb.tokens.principal(tok)


def register_git_routes(app: Flask, sb: "Sandbox") -> None:
    @app.get("/<ws>/<repo>/info/refs")
    def info_refs(ws: str, repo: str) -> Response:
        service = request.args.get("service")
        if service not in SERVICES:
            return _text(403, "Only the smart HTTP protocol is supported")
        return _serve(sb, ws, repo, "info/refs", service)

    @app.post("/<ws>/<repo>/<service>")
    def rpc(ws: str, repo: str, service: str) -> Response:
        if service not in SERVICES:
            return _text(404, "Not found")
        return _serve(sb, ws, repo, service, service)


def _serve(sb: "Sandbox", ws_ident: str, repo_ident: str, suffix: str, service: str) -> Response:
    principal = git_principal(sb, request.headers.get("Authorization"))
    if principal is None:
        return _text(401, "Authentication required", {"WWW-Authenticate": CHALLENGE})
    ws = sb.find_workspace(ws_ident)
    slug = repo_ident[:-4] if repo_ident.endswith(".git") else repo_ident
    repo = sb.find_repository(ws, slug) if ws else None
    if repo is None or not principal.can_see(repo):
        return _text(404, "Repository not found")
    if not principal.has(SERVICES[service]):
        return _text(403, f"Your credentials lack the {SERVICES[service]} scope")
    return _run_backend(sb, ws, repo, suffix, service)


def _cgi_env(repo: Repository, suffix: str) -> dict[str, str]:
    env = {"GIT_PROJECT_ROOT": str(repo.path.parent), "PATH_INFO": f"/{repo.path.name}/{suffix}",
           "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": request.method,
           "QUERY_STRING": request.query_string.decode("latin-1"),
           "CONTENT_TYPE": request.headers.get("Content-Type", ""), "REMOTE_USER": TOKEN_USER,
           "REMOTE_ADDR": request.remote_addr or "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
           "GATEWAY_INTERFACE": "CGI/1.1"}
    proto = request.headers.get("Git-Protocol")
    if proto:  # protocol v2 negotiation
        env["GIT_PROTOCOL"] = env["HTTP_GIT_PROTOCOL"] = proto
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        env["HTTP_CONTENT_ENCODING"] = encoding
    return env


def _run_backend(sb: "Sandbox", ws: Workspace, repo: Repository, suffix: str, service: str) -> Response:
    env = _cgi_env(repo, suffix)
    body = request.get_data() if request.method == "POST" else b""
    env["CONTENT_LENGTH"] = str(len(body))
    proc = gitops.popen_http_backend(env)
    stderr: list[bytes] = []
    threading.Thread(target=_feed, args=(proc, body, stderr), daemon=True).start()
    status, headers = _read_cgi_headers(proc)
    if suffix == "git-receive-pack":
        # Buffer the (small) report, then announce the ref changes before answering, so a `git push`
        # returns only after the webhooks went out (deterministic tests).
        output = proc.stdout.read()
        proc.wait()
        if proc.returncode == 0:
            sb.notify_push(ws.uuid, repo.uuid, order=pushed_refs(body, request.headers.get("Content-Encoding")))
        return Response(output, status=status, headers=headers)
    slow = suffix == "git-upload-pack" and sb.git_delay > 0
    return Response(_stream(proc, sb.git_delay if slow else 0.0), status=status, headers=headers,
                    direct_passthrough=True)


def pushed_refs(body: bytes, encoding: str | None = None) -> list[str]:
    """The refs a receive-pack request updates, in the order the client sent its commands.

    The request starts with pkt-lines (4 hex digits of length, then the line): optional `shallow <oid>`,
    then `<old> <new> <ref>` commands (the first followed by NUL and capabilities), then a flush `0000`.
    """
    if encoding and encoding.lower() in ("gzip", "x-gzip"):
        body = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, 1 << 20)
    refs, pos = [], 0
    while pos + 4 <= len(body):
        try:
            size = int(body[pos:pos + 4], 16)
        except ValueError:
            break
        if size < 4:  # flush (or delim): the command list is over
            break
        words = body[pos + 4:pos + size].split(b"\0", 1)[0].strip().split(b" ")
        if len(words) == 3 and words[0] != b"shallow":
            refs.append(words[2].decode("utf-8", "replace"))
        pos += size
    return refs


def _feed(proc: object, body: bytes, stderr: list[bytes]) -> None:
    try:
        if body:
            proc.stdin.write(body)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    stderr.append(proc.stderr.read())


def _read_cgi_headers(proc: object) -> tuple[int, list[tuple[str, str]]]:
    status, headers = 200, []
    while True:
        line = proc.stdout.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((name.strip(), value.strip()))
    return status, headers


def _stream(proc: object, delay: float) -> Iterator[bytes]:
    """Relay the backend's output; with `delay`, in small chunks with a pause before each."""
    try:
        while True:
            if delay:
                time.sleep(delay)
            chunk = proc.stdout.read1(SLOW_CHUNK if delay else CHUNK)
            if not chunk:
                break
            yield chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
