"""Apply Alembic migrations, serialised so web and worker can both migrate on start."""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from .db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x5354524F  # "STRO": an arbitrary constant for pg_advisory_lock


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@contextmanager
def _migration_lock(db: Database, conn: Connection, lock_dir: Path) -> Iterator[None]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "migrate.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def upgrade(db: Database, lock_dir: Path) -> None:
    """Bring the schema to the newest revision (idempotent, safe to run concurrently)."""
    cfg = _config()
    with db.engine.connect() as conn:
        with _migration_lock(db, conn, lock_dir):
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()


def is_current(db: Database) -> bool:
    """True when the database is at the newest revision."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head
