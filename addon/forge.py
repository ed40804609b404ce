"""Forge Remote routes: lifecycle, product events, the scheduled tick, pre-uninstall, and the settings page.

Every route needs a valid Forge Invocation Token; all of them answer 404 while STRONGROOM_FORGE_APP_ID
is unset. `/forge/ui/api/v1/<path>` answers exactly like `/api/v1/<path>`: it runs the same view with
the tenant taken from the token (changes only for workspace admins).
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound as RouteNotFound

from strongroom import forgeapp
from strongroom.errors import NotFound
from strongroom.forge import JwksCache, verify_invocation_token

from .deps import ctx, dispatcher

bp = Blueprint("forge", __name__, url_prefix="/forge")
log = logging.getLogger(__name__)
SYSTEM_TOKEN_HEADER = "x-forge-oauth-system"
UI_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _keys() -> JwksCache:
    """One key cache per web process (fetched lazily, refreshed on an unknown kid)."""
    cache = current_app.extensions.get("strongroom.forge_jwks")
    if cache is None:
        cache = current_app.extensions["strongroom.forge_jwks"] = JwksCache(ctx().settings.forge_jwks_url)
    return cache


@bp.before_request
def _verify_invocation() -> None:
    app_id = ctx().settings.forge_app_id
    if not app_id:
        raise NotFound("Forge is not enabled on this deployment")
    if request.method != "POST" and request.endpoint != "forge.ui":
        raise MethodNotAllowed(valid_methods=["POST"])
    g.forge = verify_invocation_token(request.headers.get("Authorization"), app_id=app_id, keys=_keys())


def _body() -> object:
    return request.get_json(silent=True)


def _system_token() -> str | None:
    return request.headers.get(SYSTEM_TOKEN_HEADER) or None


def _dispatch(outcome: forgeapp.Outcome):
    """Enqueue after the commit; a broker outage only delays the work (the janitor re-dispatches it)."""
    try:
        for repository_id in outcome.sync_ids:
            dispatcher().sync_repository(repository_id)
        for job_id in outcome.job_ids:
            dispatcher().run_job(job_id)
    except Exception:
        log.exception("could not enqueue Forge work; the janitor will")
    return jsonify({"status": outcome.status, "jobs": list(outcome.job_ids)}), 200


@bp.route("/lifecycle", methods=UI_METHODS)  # 404 for every method while Forge is off
def lifecycle():
    return _dispatch(forgeapp.handle_lifecycle(ctx(), g.forge, _body(), _system_token()))


@bp.route("/events", methods=UI_METHODS)  # 404 for every method while Forge is off
def events():
    return _dispatch(forgeapp.handle_event(ctx(), g.forge, _body(), _system_token()))


@bp.route("/tick", methods=UI_METHODS)  # 404 for every method while Forge is off
def tick():
    return _dispatch(forgeapp.handle_tick(ctx(), g.forge, _body() or {}, _system_token()))


@bp.route("/uninstall", methods=UI_METHODS)  # 404 for every method while Forge is off
def uninstall():
    return _dispatch(forgeapp.handle_uninstall(ctx(), g.forge, _body() or {}))


@bp.route("/ui/api/v1/<path:path>", methods=UI_METHODS)
def ui(path: str):
    """Run the /api/v1 view for ``path`` as the token's tenant (the api blueprint's own auth is not used)."""
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(f"/api/v1/{path}", method=request.method)
    except (RouteNotFound, MethodNotAllowed):
        raise NotFound("no such API endpoint") from None
    if not endpoint.startswith("api."):
        raise NotFound("no such API endpoint")
    g.tenant_id, g.actor = forgeapp.authorize_ui(ctx(), g.forge, request.method, _system_token())
    return current_app.view_functions[endpoint](**args)
