"""REST 2.0 on `api_url` (§6): workspaces, repositories, refs; strict authentication and scopes.

Visibility rule: a principal sees only its own workspace. Another workspace or one of its repositories
answers 404 (as for a private object you cannot see: Bitbucket does not confirm it exists); listing
another workspace's repositories answers 200 with no values (Bitbucket lists only what you may see).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable
from urllib.parse import quote, urlsplit

from atlassian_jwt.url_utils import hash_url
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import gitops
from .auth import AuthError, Principal, expand_scopes, looks_like_jwt, split_authorization, verify_app_jwt
from .model import Repository, Workspace
from .query import ApiError, apply_q_sort, paginate

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

NOT_ACCESSIBLE = "This API is not accessible by this authentication mechanism"
REPO_NOT_FOUND = ("You may not have access to this repository or it no longer exists in this workspace. "
                  "If you think this repository exists and you have access, make sure you are authenticated.")


class _StripTrailingSlash:
    """Trailing-slash tolerance (atlassian-python-api requests `…/refs/branches/`)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> object:
        path = environ.get("PATH_INFO", "")
        if len(path) > 1 and path.endswith("/"):
            environ["PATH_INFO"] = path.rstrip("/") or "/"
        return self.app(environ, start_response)


def raw_request_target() -> str:
    """Path and query exactly as sent on the wire: the qsh is computed over this, not a decoded form."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        raw = quote(request.path) + (f"?{request.query_string.decode()}" if request.query_string else "")
    if "://" in raw:  # absolute-form request target
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
    return raw


def authenticate(sb: "Sandbox") -> Principal:
    """Connect JWT (`Authorization: JWT`) or an access token (`Authorization: Bearer`); anything else 401."""
    if "jwt" in request.args:
        # Real Bitbucket treats a query-string JWT as anonymous (200 with empty results, §4.1);
        # the sandbox refuses it outright so the mistake cannot go unnoticed.
        raise ApiError(401, "JWT must be sent in the Authorization header, not the query string")
    parts = split_authorization(request.headers.get("Authorization"))
    if parts is None:
        raise ApiError(401, "Authentication required")
    scheme, value = parts
    for provider in sb.principal_providers:  # token mode, Forge system tokens
        principal = provider.rest_principal(scheme, value)
        if principal is not None:
            return principal
    if scheme == "JWT":
        target = raw_request_target()
        try:
            inst, _ = verify_app_jwt(value, sb.jwt_candidates,
                                     lambda qsh: qsh == hash_url(request.method, target))
        except AuthError as exc:
            raise ApiError(exc.status, exc.message) from None
        return Principal("connect-jwt", inst.workspace_uuid, expand_scopes(inst.scopes),
                         rate_key=f"installation:{inst.client_key}", client_key=inst.client_key)
    if scheme == "Bearer":
        tok = sb.tokens.lookup(value)
        if tok is None or not sb.installation_usable(tok.client_key):
            if looks_like_jwt(value):
                # Bitbucket again answers anonymously here; the sandbox is strict (401).
                raise ApiError(401, "A JWT must use the JWT scheme, not Bearer")
            raise ApiError(401, "Access token expired or invalid")
        return sb.tokens.principal(tok)
    raise ApiError(401, f"Unsupported authentication scheme {scheme!r}")


def require_scope(scope: str) -> None:
    p: Principal = g.principal
    if not p.has(scope):
        raise ApiError(403, "Your credentials lack one or more required privilege scopes.",
                       detail={"granted": sorted(p.scopes), "required": [scope]})


class Api:
    """Per-app helpers the views share: the sandbox, visibility checks, listing."""

    def __init__(self, sb: "Sandbox") -> None:
        self.sb = sb

    def own_workspace(self, ident: str) -> Workspace:
        ws = self.sb.find_workspace(ident)
        if ws is None or ws.uuid != g.principal.workspace_uuid:
            raise ApiError(404, f"No workspace with identifier '{ident}'.")
        return ws

    def visible_repo(self, ws_ident: str, repo_ident: str) -> tuple[Workspace, Repository]:
        ws = self.sb.find_workspace(ws_ident)
        r = self.sb.find_repository(ws, repo_ident) if ws else None
        if r is None or not g.principal.can_see(r):
            raise ApiError(404, REPO_NOT_FOUND)
        return ws, r

    def listing(self, items: list[dict]) -> Response:
        """Filter (`q`), sort and paginate `items` according to the current request."""
        items = apply_q_sort(items, request.args.get("q"), request.args.get("sort"))
        return jsonify(paginate(items, request.args, self.sb.api_url + quote(request.path)))

    def repository(self, ws: Workspace, r: Repository) -> dict:
        return self.sb.renderer.repository(ws, r, mainbranch=gitops.default_branch(r.path),
                                           size=gitops.repo_size(r.path))

    def refs(self, ws: Workspace, r: Repository, patterns: list[str]) -> list[dict]:
        infos = gitops.ref_infos(r.path, patterns)
        commits = gitops.commit_infos(r.path, [i.commit for i in infos])
        return [self.sb.renderer.ref(ws, r, i, commits[i.commit]) for i in infos if i.commit in commits]


def create_api_app(sb: "Sandbox") -> Flask:
    """The Flask app behind `sb.api_url`."""
    from .extensions import register_extension_views
    from .rest_views import register_views

    app = Flask("sandbox.api")
    app.json.sort_keys = False
    app.wsgi_app = _StripTrailingSlash(app.wsgi_app)

    def err(status: int, message: str, detail: object = None, headers: dict | None = None) -> Response:
        resp = jsonify(sb.renderer.error(message, detail))
        resp.status_code = status
        resp.headers.update(headers or {})
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return err(exc.status, exc.message, exc.detail, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return err(exc.code or 500, "Resource not found" if exc.code == 404 else exc.name)

    @app.before_request
    def _gate() -> Response | None:
        if sb.down:
            return err(503, "Service unavailable", headers={"Retry-After": "30"})
        g.principal = authenticate(sb)
        if sb.limiter is not None and request.path.startswith("/2.0/repositories/"):
            wait = sb.limiter.hit(g.principal.rate_key)
            if wait is not None:
                raise ApiError(429, "Rate limit for this resource has been exceeded",
                               headers={"Retry-After": str(max(1, int(wait + 0.999)))})
        return None

    api = Api(sb)
    register_views(app, api)
    register_extension_views(app, api)
    return app
