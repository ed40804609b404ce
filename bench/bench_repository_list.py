"""How fast does GET /api/v1/repositories answer one page for a workspace of 5,000 repositories?

Measured in-process through Flask's test client (the full app: authentication, query, JSON), against
two baselines taken in the same run on the same database: a trivial Flask endpoint (the framework's
floor) and the raw SELECT of the same page (the database's floor). Prints absolute p50/p99 and
ratios. Run:  .venv/bin/python bench/bench_repository_list.py [--repos 5000] [--rounds 300]
(SQLite by default; DATABASE_URL=postgresql://... benchmarks a fresh PostgreSQL database).
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask, jsonify  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from addon import create_app  # noqa: E402
from strongroom.config import Settings  # noqa: E402
from strongroom.context import Context  # noqa: E402
from strongroom.ports import RecordingDispatcher  # noqa: E402
from strongroom.sessions import mint_session  # noqa: E402
from strongroom.store.migrate import upgrade  # noqa: E402
from strongroom.store.models import Repository, Tenant, new_id, utcnow  # noqa: E402

STATES = ("ok",) * 90 + ("failing",) * 4 + ("pending",) * 3 + ("syncing",) * 3


@contextmanager
def database(tmp: Path) -> Iterator[str]:
    """A fresh database: SQLite in ``tmp``, or a throwaway PostgreSQL database on DATABASE_URL's server."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    import psycopg

    base = base.replace("postgres://", "postgresql://", 1).replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"strongroom_bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", parts.query, ""))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def populate(ctx: Context, count: int) -> str:
    """One tenant with ``count`` repositories in a realistic mix of states and scope choices."""
    with ctx.db.session() as s:
        tenant = Tenant(workspace_uuid=f"{{{uuid.uuid4()}}}", workspace_slug="bench", workspace_name="Bench")
        s.add(tenant)
        s.flush()
        now = utcnow()
        rows = [{"id": new_id("r"), "tenant_id": tenant.id, "uuid": f"{{{uuid.uuid4()}}}", "slug": f"repo-{i:05d}",
                 "name": f"repo-{i:05d}", "full_name": f"bench/repo-{i:05d}", "vault_path": f"v/{i}.git",
                 "state": STATES[i % len(STATES)], "scope_choice": "exclude" if i % 50 == 0 else None,
                 "deleted_upstream": i % 97 == 0, "size_bytes": 1000 * i, "snapshot_count": i % 40,
                 "last_backup_at": now, "requested_gen": 1, "synced_gen": 1, "created_at": now}
                for i in range(count)]
        s.execute(insert(Repository), rows)
        return tenant.id


def measure(call: Callable[[], object], rounds: int) -> list[float]:
    for _ in range(max(5, rounds // 10)):  # warm caches and connection pools
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] if len(samples) > 1 else samples[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir, database(Path(tmpdir)) as url:
        settings = Settings(data_dir=Path(tmpdir), port=0, base_url="http://bench.local", database_url=url,
                            redis_url=None, secret_keys=(secrets.token_urlsafe(32),))
        ctx = Context.create(settings)
        upgrade(ctx.db, Path(tmpdir) / "locks")
        tenant_id = populate(ctx, args.repos)
        run(ctx, settings, tenant_id, args)
        ctx.db.dispose()


def run(ctx: Context, settings: Settings, tenant_id: str, args) -> None:
    client = create_app(settings, ctx=ctx, dispatcher=RecordingDispatcher()).test_client()
    headers = {"Authorization": f"Bearer {mint_session(settings, tenant_id, 'bench')[0]}"}
    trivial = Flask("baseline")
    trivial.add_url_rule("/ping", "ping", lambda: jsonify({"ok": True}))
    trivial_client = trivial.test_client()
    middle = args.repos // 2 // 50
    raw_sql = text("SELECT * FROM repositories WHERE tenant_id = :t ORDER BY slug, id LIMIT 50 OFFSET :o")

    def api(query: str) -> Callable[[], object]:
        def call():
            response = client.get(f"/api/v1/repositories?{query}", headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)
        return call

    def raw() -> None:
        with ctx.db.engine.connect() as conn:
            conn.execute(raw_sql, {"t": tenant_id, "o": middle * 50}).fetchall()

    floor_flask = measure(lambda: trivial_client.get("/ping"), args.rounds)
    floor_sql = measure(raw, args.rounds)
    cases = {"first page": "page=1&pagelen=50", f"page {middle + 1}": f"page={middle + 1}&pagelen=50",
             "name filter": "q=repo-04&pagelen=50", "state=failing": "state=failing&pagelen=50",
             "state=out_of_scope": "state=out_of_scope&pagelen=50", "overview": None}
    print(f"{args.repos} repositories on {ctx.db.engine.dialect.name}, {args.rounds} rounds each")
    print(f"{'case':<22}{'p50 ms':>9}{'p99 ms':>9}{'x flask':>9}{'x SELECT':>10}")
    report("baseline: trivial Flask", floor_flask, floor_flask, floor_sql)
    report("baseline: raw SELECT", floor_sql, floor_flask, floor_sql)
    worst = 0.0
    for name, query in cases.items():
        if query is None:
            call = lambda: client.get("/api/v1/overview", headers=headers)  # noqa: E731
        else:
            call = api(query)
        samples = measure(call, args.rounds)
        worst = max(worst, p(samples, 99))
        report(name, samples, floor_flask, floor_sql)
    print(f"target: one page in well under 100 ms -> worst p99 {worst:.1f} ms: {'met' if worst < 100 else 'NOT met'}")


def report(name: str, samples: list[float], flask_floor: list[float], sql_floor: list[float]) -> None:
    median = statistics.median(samples)
    print(f"{name:<22}{median:>9.2f}{p(samples, 99):>9.2f}{median / statistics.median(flask_floor):>9.1f}"
          f"{median / statistics.median(sql_floor):>10.1f}")


if __name__ == "__main__":
    main()
