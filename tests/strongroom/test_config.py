import os
import stat

import pytest

from strongroom.config import Settings
from strongroom.errors import InvalidInput


def test_defaults_work_with_an_empty_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({})
    assert s.data_dir == (tmp_path / "var").resolve()
    assert s.base_url == "http://localhost:8000" and s.app_key == "strongroom-backup"
    assert s.database_url == f"sqlite:///{s.data_dir / 'strongroom.sqlite3'}"
    assert s.redis_url is None and s.embedded
    assert s.allowed_hosts == ("https://bitbucket.org", "https://api.bitbucket.org")
    key_file = s.data_dir / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert Settings.from_env({}).secret_key == s.secret_key  # kept, not regenerated


def test_environment_overrides(tmp_path):
    s = Settings.from_env({"STRONGROOM_DATA_DIR": str(tmp_path), "PORT": "9000",
                           "DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://r:6379/0",
                           "STRONGROOM_SECRET_KEY": "new,old", "STRONGROOM_ALLOWED_HOSTS": "https://a/,https://b",
                           "STRONGROOM_BASE_URL": "https://strongroom.example/"})
    assert s.base_url == "https://strongroom.example" and s.port == 9000
    assert s.database_url == "postgresql+psycopg://u@h/db" and not s.embedded
    assert s.secret_keys == ("new", "old") and s.allowed_hosts == ("https://a", "https://b")
    assert not (tmp_path / "secret_key").exists()
    assert "new" not in repr(s)


def test_bad_integer_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="PORT"):
        Settings.from_env({"STRONGROOM_DATA_DIR": str(tmp_path), "PORT": "eighty"})
