"""Persistence: SQLAlchemy 2 models, sessions, migrations and secret encryption."""
from .db import Database
from .crypto import SecretBox

__all__ = ["Database", "SecretBox"]
