"""Process entry point for `celery -A workers.main worker|beat`: reads the environment once."""
from strongroom.config import Settings
from strongroom.store import Database
from strongroom.store.migrate import upgrade

from .app import create_celery

_settings = Settings.from_env()
upgrade(Database(_settings.database_url), _settings.data_dir / "locks")  # workers migrate on start too
app = create_celery(_settings)
