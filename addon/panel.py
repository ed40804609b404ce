"""The settings panel pages (Connect configurePage, admin page, repository page), rendered on the server.

Each page verifies the host's JWT (query parameter `jwt`, qsh of this exact page request) before
anything is rendered, then hands the page's scripts a short-lived panel session token. No cookies:
the page lives in a third-party iframe where they are blocked, so there is no CSRF surface either.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template, request

from strongroom.connect.payloads import normalize_uuid
from strongroom.errors import InvalidInput, StrongroomError
from strongroom.panel import PanelOpening, open_connect_page
from strongroom.sessions import SESSION_SECONDS

from .deps import ctx, signed_request

bp = Blueprint("panel", __name__, url_prefix="/panel", template_folder="templates",
               static_folder="static", static_url_path="/static")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _secure(response: Response, frame_origin: str | None, script_origin: str | None = None) -> Response:
    """Headers for a page holding a session token: never cached, no Referer, framed only by its host."""
    base = _origin(ctx().settings.base_url)
    scripts = " ".join(filter(None, ["'self'", script_origin]))
    ancestors = frame_origin or "'self'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' {base}; frame-ancestors {ancestors}; base-uri 'none'; "
        "form-action 'none'; object-src 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def render_panel(opening: PanelOpening, *, view: str = "workspace", repository: str | None = None,
                 renew: bool = True, in_host: bool = True) -> Response:
    """The panel page for a verified opening; reusable by any front that authenticated the user itself.

    ``in_host=False`` (the standalone panel) loads no Connect JS and may only be framed by itself.
    """
    settings = ctx().settings
    boot = {
        "api": settings.base_url + "/api/v1", "git": settings.base_url + "/git",
        "token": opening.session_token, "expires_in": SESSION_SECONDS, "renew": renew,
        "view": view, "repository": repository,
        "workspace": {"slug": opening.workspace_slug, "name": opening.workspace_name},
    }
    host = opening.host_base_url if in_host else None
    all_js = f"{host}/atlassian-connect/all.js" if host else None
    html = render_template("panel.html", boot=boot, all_js=all_js, workspace_name=opening.workspace_name,
                           view=view)
    return _secure(Response(html, mimetype="text/html"), _origin(host) if host else None,
                   _origin(host) if host else None)


def _error_page(exc: StrongroomError) -> Response:
    status = exc.status if 400 <= exc.status < 600 else 500
    html = render_template("panel_error.html", status=status, code=exc.code, message=exc.message)
    return _secure(Response(html, status=status, mimetype="text/html"), None)


bp.register_error_handler(StrongroomError, _error_page)


def _repository_param() -> str:
    raw = request.args.get("repoUuid", "")
    try:
        return normalize_uuid(raw)
    except InvalidInput as exc:
        raise InvalidInput("the page needs a repository UUID (repoUuid)") from exc


@bp.get("/admin")
def admin_page():
    return render_panel(open_connect_page(ctx(), signed_request()))


@bp.get("/configure")
def configure_page():
    return render_panel(open_connect_page(ctx(), signed_request()))


@bp.get("/repository")
def repository_page():
    opening = open_connect_page(ctx(), signed_request())  # verify before reading anything else
    return render_panel(opening, view="repository", repository=_repository_param())
