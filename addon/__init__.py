"""The Flask web front: lifecycle, webhooks, JSON API, git endpoints, health and descriptor."""
from __future__ import annotations

import logging

from flask import Flask

from strongroom.config import Settings
from strongroom.context import Context
from strongroom.ports import Dispatcher

from . import api, errors, git, lifecycle, site, webhooks
from . import panel, panel_api
from . import forge, hooks, standalone
from . import restore_api

# One line per feature blueprint.
BLUEPRINTS = (
    site,
    lifecycle,
    webhooks,
    api,
    git,
    panel,
    panel_api,
    hooks,
    forge,
    standalone,
    restore_api,
)


def create_app(settings: Settings, *, ctx: Context | None = None, dispatcher: Dispatcher | None = None) -> Flask:
    """Build the web app for ``settings`` (tests may inject a context and a dispatcher)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["strongroom"] = ctx or Context.create(settings)
    if dispatcher is None:
        from workers.enqueue import CeleryDispatcher  # the one door from web to workers
        dispatcher = CeleryDispatcher(settings)
    app.extensions["strongroom.dispatcher"] = dispatcher
    errors.register(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    logging.getLogger(__name__).debug("web app ready for %s", settings.base_url)
    return app
