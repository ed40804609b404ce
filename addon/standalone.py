"""The standalone panel at /ui/ (any install path): an operator key opens the same panel as in Bitbucket.

The key travels once in a POST body and is exchanged for a panel session token, exactly what the
Connect panel's scripts use; token mode adds a notice when the workspace credential expires soon.
"""
from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template, request

from strongroom.errors import AuthError, Forbidden
from strongroom.operators import authenticate_operator_key
from strongroom.panel import open_session
from strongroom.tokenmode import credential_notice

from .deps import ctx
from .panel import render_panel

bp = Blueprint("standalone", __name__, url_prefix="/ui")
_LOGIN_CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def _login_page(error: str | None = None, status: int = 200) -> Response:
    response = Response(render_template("standalone_login.html", error=error), status=status, mimetype="text/html")
    # same-origin, not no-referrer: with no-referrer browsers post the form with `Origin: null`, and the
    # Origin check below is what keeps other sites from posting keys here.
    response.headers.update({"Content-Security-Policy": _LOGIN_CSP, "Cache-Control": "no-store",
                             "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"})
    return response


@bp.get("/")
def login_form():
    return _login_page()


@bp.post("/")
def login():
    base = urlsplit(ctx().settings.base_url)
    origin = request.headers.get("Origin")
    if origin and origin != f"{base.scheme}://{base.netloc}":  # a form posted from another site
        raise Forbidden("sign in from this server's own page", code="foreign_origin")
    try:
        tenant_id, key_id = authenticate_operator_key(ctx(), request.form.get("key", "").strip())
    except AuthError:
        return _login_page("That operator key is not valid (or was revoked).", 401)
    opening = open_session(ctx(), tenant_id, f"operator-key:{key_id}")
    return _with_notice(render_panel(opening, in_host=False), credential_notice(ctx(), tenant_id))


def _with_notice(response: Response, notice: dict | None) -> Response:
    """Put the credential notice at the top of the panel's main area (static, escaped HTML; no script)."""
    if notice is None:
        return response
    html = response.get_data(as_text=True)
    banner = (f'<section class="banner banner-{notice["level"]}" role="alert" id="credential-notice">'
              f'<span class="icon" aria-hidden="true">!</span><div><p>{escape(notice["message"])}</p></div></section>')
    marker = html.find(">", html.find("<main")) + 1 if "<main" in html else html.find(">", html.find("<body")) + 1
    response.set_data(html[:marker] + banner + html[marker:])
    return response
