"""The `web_url` server: the OAuth token endpoint (JWT grant, §4.3) and git smart HTTP (§4.4)."""
from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from atlassian_jwt.url_utils import hash_url
from flask import Flask, Response, jsonify, redirect, request

from .auth import AuthError, expand_scopes, split_authorization, verify_app_jwt
from .githttp import register_git_routes
from .install import InstallError

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

TOKEN_PATH = "/site/oauth2/access_token"
JWT_GRANT = "urn:bitbucket:oauth2:jwt"


def _oauth_error(status: int, error: str, description: str) -> Response:
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def create_web_app(sb: "Sandbox") -> Flask:
    """The Flask app behind `sb.web_url`."""
    app = Flask("sandbox.web")
    app.json.sort_keys = False

    @app.before_request
    def _outage() -> Response | None:
        if sb.down and request.path != "/":
            return Response("Service unavailable\n", status=503, mimetype="text/plain",
                            headers={"Retry-After": "30"})
        return None

    @app.get("/")
    def index() -> Response:
        return Response("Strongroom sandbox: a simulated Bitbucket Cloud host.\n"
                        f"REST API: {sb.api_url}/2.0/\n", mimetype="text/plain")

    @app.post(TOKEN_PATH)
    def access_token() -> Response:
        return _exchange_jwt(sb)

    @app.get("/site/addons/authorize")
    def authorize() -> Response:
        return _authorize(sb)

    register_git_routes(app, sb)
    return app


def _exchange_jwt(sb: "Sandbox") -> Response:
    """JWT grant: `Authorization: JWT <t>` (scheme case-sensitive) + `grant_type=urn:bitbucket:oauth2:jwt`.

    Errors follow OAuth 2 (RFC 6749 §5.2, RFC 7523): no JWT -> 401 invalid_client; a JWT that does not
    verify (signature, expiry, issuer, qsh) -> 400 invalid_grant.
    """
    parts = split_authorization(request.headers.get("Authorization"))
    if parts is None or parts[0] != "JWT":
        return _oauth_error(401, "invalid_client", "Authorization: JWT <token> is required for this grant")
    raw_body = request.get_data(cache=True, as_text=True)
    if request.form.get("grant_type") != JWT_GRANT:
        return _oauth_error(400, "unsupported_grant_type", f"grant_type must be {JWT_GRANT}")
    # Implementations differ (§4.3): accept no qsh, the plain one, or one that counts the form params.
    accepted = {hash_url("POST", TOKEN_PATH), hash_url("POST", f"{TOKEN_PATH}?{raw_body}")}
    try:
        inst, _ = verify_app_jwt(parts[1], sb.jwt_candidates, lambda qsh: qsh is None or qsh in accepted)
    except AuthError as exc:
        return _oauth_error(400, "invalid_grant", exc.message)
    requested = request.form.get("scope")
    scopes = tuple(inst.scopes)
    if requested:
        wanted = tuple(dict.fromkeys(requested.replace(",", " ").split()))
        if not set(wanted) <= expand_scopes(inst.scopes):
            return _oauth_error(400, "invalid_scope", "scope exceeds the app's granted scopes")
        scopes = wanted
    repo_uuid = None
    if request.form.get("bitbucket_repository"):
        ws = sb.find_workspace(inst.workspace_uuid)
        repo = sb.find_repository(ws, request.form["bitbucket_repository"]) if ws else None
        if repo is None:
            return _oauth_error(400, "invalid_request", "bitbucket_repository does not name a repository "
                                                        "of the installation's workspace")
        repo_uuid = repo.uuid
    tok = sb.tokens.issue(inst, scopes, repo_uuid)
    resp = jsonify({"access_token": tok.token, "scopes": " ".join(tok.scopes), "expires_in": sb.tokens.ttl,
                    "token_type": "bearer"})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _authorize(sb: "Sandbox") -> Response:
    """Install link (§1.5): `?descriptor_uri=` or `?addon_key=` (an app installed before) + `redirect_uri`.

    The real page asks the signed-in user to pick a workspace; here `workspace=<slug>` names it (optional
    when only one exists). Installation is synchronous; then 302 to `redirect_uri?client_key=…`.
    """
    args = request.args
    descriptor_uri = args.get("descriptor_uri")
    if not descriptor_uri and args.get("addon_key"):
        known = [i for i in sb.installations if i.app_key == args["addon_key"]]
        descriptor_uri = known[-1].descriptor_url if known else None
    redirect_uri = args.get("redirect_uri", "")
    workspaces = [args["workspace"]] if args.get("workspace") else sb.workspace_slugs()
    if not descriptor_uri or len(workspaces) != 1:
        return Response("descriptor_uri (or a known addon_key) and one workspace are required\n", status=400,
                        mimetype="text/plain")
    try:
        result = sb.install(workspaces[0], descriptor_uri)
    except (InstallError, KeyError) as exc:
        return Response(f"install failed: {exc}\n", status=400, mimetype="text/plain")
    base_url = sb.installation(workspaces[0]).base_url.rstrip("/")
    if not redirect_uri.startswith(base_url):
        return Response(f"installed {result['client_key']}\n", mimetype="text/plain")
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(f"{redirect_uri}{separator}{urlencode({'client_key': result['client_key']})}")
