"""Process entry point for gunicorn (`addon.wsgi:app`): reads the environment once, migrates, serves."""
from strongroom.config import Settings
from strongroom.context import Context
from strongroom.store.migrate import upgrade

from . import create_app

_settings = Settings.from_env()
_ctx = Context.create(_settings)
upgrade(_ctx.db, _settings.data_dir / "locks")
app = create_app(_settings, ctx=_ctx)
