from sqlalchemy import inspect

from strongroom.store import Database
from strongroom.store.migrate import is_current, upgrade


def test_upgrade_creates_every_table_and_is_idempotent(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    assert not is_current(db)
    upgrade(db, tmp_path / "locks")
    upgrade(db, tmp_path / "locks")
    assert is_current(db)
    tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "installations", "repositories", "snapshots", "events", "jobs", "job_items",
            "access_tokens", "alembic_version"} <= tables


def test_repository_settings_and_item_warnings_columns_exist(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    upgrade(db, tmp_path / "locks")
    columns = {table: {c["name"] for c in inspect(db.engine).get_columns(table)} for table in ("repositories", "job_items")}
    assert {"settings_json", "settings_recorded_at"} <= columns["repositories"]
    assert "warnings_json" in columns["job_items"]
