"""Read-only git smart HTTP from the backups: latest state and any snapshot."""
from __future__ import annotations

import re

from flask import Blueprint, Response, request

from strongroom.access import authenticate_clone
from strongroom.clone import resolve_clone_target
from strongroom.errors import AuthError, Forbidden, NotFound
from strongroom.vault.serve import serve_git_http

from .deps import ctx
from .errors import error_response

bp = Blueprint("git", __name__, url_prefix="/git")
GIT_MAX_BODY = 256 * 1024 * 1024  # negotiation bodies of big repositories exceed the API's 1 MiB
_PATH = re.compile(r"^(?P<repo>[^/]+?)(?:/snapshots/(?P<snap>[^/]+?))?\.git(?P<service>/.*)?$")
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Strongroom"'}


def _is_push(service: str) -> bool:
    return service.endswith("/git-receive-pack") or request.args.get("service") == "git-receive-pack"


@bp.route("/<workspace>/<path:rest>", methods=["GET", "POST"])
def smart_http(workspace: str, rest: str):
    request.max_content_length = GIT_MAX_BODY
    match = _PATH.match(rest)
    if not match:
        raise NotFound("not a repository path")
    auth = request.authorization
    try:
        tenant = authenticate_clone(ctx(), workspace, auth.password if auth else None)
    except AuthError as exc:
        return error_response(401, exc.code, exc.message, _CHALLENGE)
    service = match.group("service") or "/"
    if _is_push(service):
        raise Forbidden("backups are read-only; push to Bitbucket instead", code="read_only")
    repo_path = resolve_clone_target(ctx(), tenant.id, workspace, match.group("repo"), match.group("snap"))
    result = serve_git_http(
        repo_path, service_path=service, method=request.method,
        query_string=request.query_string.decode("latin-1"), content_type=request.content_type,
        content_encoding=request.headers.get("Content-Encoding"), git_protocol=request.headers.get("Git-Protocol"),
        body=request.stream, content_length=request.content_length)
    return Response(result.body, status=result.status, headers=result.headers, direct_passthrough=True)
