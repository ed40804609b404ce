"""Health of the parts a deployment needs: database, broker and data directory."""
from __future__ import annotations

import os
import tempfile

from .context import Context


def _check(fn) -> dict:
    try:
        fn()
        return {"ok": True}
    except Exception as exc:  # a health check reports; it never raises
        return {"ok": False, "error": type(exc).__name__}


def _data_dir_writable(ctx: Context) -> None:
    with tempfile.NamedTemporaryFile(dir=ctx.settings.data_dir, prefix=".health-") as fh:
        fh.write(b"ok")
        fh.flush()
        os.fsync(fh.fileno())


def broker_dir(ctx: Context):
    return ctx.settings.data_dir / "broker"


def _broker(ctx: Context) -> None:
    if ctx.settings.redis_url:
        import redis

        redis.Redis.from_url(ctx.settings.redis_url, socket_timeout=2, socket_connect_timeout=2).ping()
        return
    path = broker_dir(ctx)
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise PermissionError(str(path))


def check_health(ctx: Context) -> dict:
    """A report with one entry per dependency and an overall ``ok``."""
    report = {
        "database": _check(ctx.db.ping),
        "broker": _check(lambda: _broker(ctx)),
        "data_dir": _check(lambda: _data_dir_writable(ctx)),
    }
    report["broker"]["kind"] = "redis" if ctx.settings.redis_url else "embedded"
    report["ok"] = all(v["ok"] for v in report.values() if isinstance(v, dict))
    return report
