"""(a) Push-to-snapshot sync of ONE new commit against a plain `git fetch` into a bare mirror,
for repositories of growing history. The cost must stay flat as history grows.

Measured per repository size, on the same new commit, in rotating order:
- plain fetch:   `git fetch` into a `git clone --mirror` of the host repository (git's defaults);
- durable fetch: the same with the vault's durability settings (core.fsync as the vault sets it,
                 fetch.unpackLimit=1), to separate the price of durability from our own overhead;
- sync:          `strongroom.backup.sync_repository` in-process (lock, keep refs, fetch heads+tags
                 with --prune --atomic, keep new tips, durable journal entry, snapshot row);
- end to end:    the host sends repo:push -> webhook (gunicorn) -> outbox -> Celery worker ->
                 sync -> the snapshot is visible in GET /api/v1/repositories/{uuid}/snapshots.

Run: .venv/bin/python -m bench.bench_sync [--sizes 1000,10000,100000] [--reps 9] [--e2e-reps 7]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ._gitgen import git
from ._report import header, ms, ratio, summary, table, timed, write_result
from ._stack import BenchStack, BenchWorkspace

WORKSPACE = "bench-sync"


def _slug(size: int) -> str:
    return f"history-{size}"


def _prepare_baselines(stack: BenchStack, slug: str) -> dict[str, Path]:
    """Two bare mirrors of the host repository: git defaults, and the vault's durability settings."""
    from strongroom.vault.maintenance import fsync_components

    env = stack.origin_git_env(WORKSPACE)
    paths = {}
    for kind in ("plain", "durable"):
        path = stack.tmp / "baseline" / kind / f"{slug}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--mirror", "--quiet", stack.origin_url(WORKSPACE, slug), str(path), env=env)
        if kind == "durable":
            git("config", "core.fsync", fsync_components(path), cwd=path)
            git("config", "fetch.unpackLimit", "1", cwd=path)
        paths[kind] = path
    return paths


def _fetch(stack: BenchStack, path: Path, env: dict[str, str], sha: str) -> float:
    seconds, _ = timed(lambda: git("fetch", "--quiet", "--prune", "origin", cwd=path, env=env))
    if git("rev-parse", "refs/heads/main", cwd=path).strip() != sha:
        raise RuntimeError(f"baseline mirror {path.name} did not get {sha}")
    return seconds


def _sync_in_process(stack: BenchStack, repo_id: str, sha: str) -> float:
    from strongroom.backup import latest_snapshot, request_sync, sync_repository
    from strongroom.store.models import Repository

    with stack.ctx.db.session() as s:  # what the webhook's event processing records
        request_sync(s.get(Repository, repo_id), "push")
    seconds, outcome = timed(lambda: sync_repository(stack.ctx, repo_id))
    with stack.ctx.db.session() as s:
        refs = json.loads(latest_snapshot(s, repo_id).refs_json)
    if outcome != "synced" or refs.get("refs/heads/main") != sha:
        raise RuntimeError(f"in-process sync returned {outcome!r} without a snapshot of {sha}")
    return seconds


def _commit(stack: BenchStack, slug: str, label: str) -> tuple[dict, str]:
    """A new commit on the host without announcing it; returns (refs before, new sha)."""
    before = stack.sandbox.refs(WORKSPACE, slug)
    sha = stack.sandbox.commit(WORKSPACE, slug, files={f"bench/{label}.txt": f"{label}\n"},
                               message=f"bench {label}", deliver=False)
    return before, sha


def _push_to_snapshot(stack: BenchStack, ws: BenchWorkspace, slug: str, repo_uuid: str, label: str,
                      poll: float) -> tuple[float, float, str]:
    """(seconds until the snapshot is visible in the API, webhook acknowledgement seconds, sha)."""
    sb = stack.sandbox
    before, sha = _commit(stack, slug, label)
    host_ws, host_repo = sb.workspace(WORKSPACE), sb.repository(WORKSPACE, slug)
    data = sb.events.push(host_ws, host_repo, host_ws.actor, before, sb.refs(WORKSPACE, slug))
    start = time.perf_counter()  # the host sends the webhook now
    delivery = sb.deliver_webhook(WORKSPACE, "repo:push", data)
    ack = time.perf_counter() - start
    if delivery is None or delivery.status_codes[-1] != 202:
        raise RuntimeError(f"webhook not accepted: {delivery and delivery.status_codes}")
    while True:
        snap = ws.api.newest_snapshot(repo_uuid)
        if snap and snap["refs"].get("refs/heads/main") == sha:
            return time.perf_counter() - start, ack, sha
        if time.perf_counter() - start > 120:
            raise RuntimeError("push did not become a snapshot within 120 s")
        time.sleep(poll)


def measure_size(stack: BenchStack, ws: BenchWorkspace, size: int, reps: int, e2e_reps: int,
                 poll: float) -> dict:
    """Every series for one repository size."""
    slug = _slug(size)
    mirrors = _prepare_baselines(stack, slug)
    env = stack.origin_git_env(WORKSPACE)
    repo_id = stack.repository_id(ws, slug)
    repo_uuid = ws.api.repositories()[slug]["uuid"]
    os.sync()  # flush the setup's writes now, so their writeback does not land inside the timings
    series: dict[str, list[float]] = {"plain_fetch": [], "durable_fetch": [], "sync": [], "e2e": [], "ack": []}
    for i in range(reps):
        _, sha = _commit(stack, slug, f"{size}-{i}")
        steps = [("plain_fetch", lambda: _fetch(stack, mirrors["plain"], env, sha)),
                 ("durable_fetch", lambda: _fetch(stack, mirrors["durable"], env, sha)),
                 ("sync", lambda: _sync_in_process(stack, repo_id, sha))]
        for name, step in steps[i % 3:] + steps[:i % 3]:  # rotate the order: no series always goes first
            series[name].append(step())
    for i in range(e2e_reps):
        seconds, ack, sha = _push_to_snapshot(stack, ws, slug, repo_uuid, f"{size}-e2e-{i}", poll)
        series["e2e"].append(seconds)
        series["ack"].append(ack)
        for kind in ("plain", "durable"):  # keep the baselines level with the host (untimed: the
            _fetch(stack, mirrors[kind], env, sha)  # worker may still be finishing its task)
    stats = {name: summary(values) for name, values in series.items()}
    plain = stats["plain_fetch"]["median"]
    return {"commits": size, "series": stats, "raw_seconds": series,
            "ratio_sync_vs_plain_fetch": ratio(stats["sync"]["median"], plain),
            "ratio_sync_vs_durable_fetch": ratio(stats["sync"]["median"], stats["durable_fetch"]["median"]),
            "ratio_e2e_vs_plain_fetch": ratio(stats["e2e"]["median"], plain)}


def growth(per_size: list[dict]) -> dict:
    """Median at the largest size / median at the smallest, per series (1.0 = flat)."""
    small, large = per_size[0]["series"], per_size[-1]["series"]
    return {name: ratio(large[name]["median"], small[name]["median"]) for name in small}


def render(per_size: list[dict], grow: dict) -> str:
    """The result as a Markdown table."""
    rows = []
    for r in per_size:
        s = r["series"]
        rows.append([f"{r['commits']:,}", ms(s["plain_fetch"]["median"]), ms(s["durable_fetch"]["median"]),
                     ms(s["sync"]["median"]), f"{r['ratio_sync_vs_plain_fetch']:.2f}x",
                     ms(s["e2e"]["median"]), f"{r['ratio_e2e_vs_plain_fetch']:.2f}x", ms(s["ack"]["median"])])
    first, last = per_size[0]["commits"], per_size[-1]["commits"]
    rows.append([f"growth {first:,}->{last:,}", f"{grow['plain_fetch']:.2f}x", f"{grow['durable_fetch']:.2f}x",
                 f"{grow['sync']:.2f}x", "", f"{grow['e2e']:.2f}x", "", ""])
    return table(["commits", "plain git fetch", "durable git fetch", "Strongroom sync (in-process)",
                  "sync / plain", "push->snapshot e2e p50", "e2e / plain", "webhook ack p50"], rows)


def run(sizes: list[int], reps: int, e2e_reps: int, *, server: str = "gunicorn", poll: float = 0.01,
        results_dir: Path | None = None, keep: bool = False) -> dict:
    """Build the stack, generate the repositories, measure every size; return and write the result."""
    sizes = sorted(sizes)
    with BenchStack("sync", server=server, keep=keep) as stack:
        header("bench_sync: one new commit, sync vs plain git fetch", stack.machine)
        stack.create_workspace(WORKSPACE)
        for size in sizes:
            seconds, _ = timed(lambda: stack.create_repository(WORKSPACE, _slug(size), history=size))
            print(f"generated {size:,} commits with git fast-import in {seconds:.1f} s", flush=True)
        ws = stack.install(WORKSPACE)
        seconds, _ = timed(lambda: stack.wait_backed_up(ws, [_slug(s) for s in sizes], timeout=1800))
        print(f"initial backup of {len(sizes)} repositories (install -> all snapshots) in {seconds:.1f} s", flush=True)
        per_size = []
        for size in sizes:
            per_size.append(measure_size(stack, ws, size, reps, e2e_reps, poll))
            s = per_size[-1]["series"]
            print(f"  {size:>7,} commits: plain fetch {ms(s['plain_fetch']['median'])}, sync {ms(s['sync']['median'])}"
                  f", e2e {ms(s['e2e']['median'])}", flush=True)
        grow = growth(per_size)
        print()
        print(render(per_size, grow))
        params = {"sizes": sizes, "reps": reps, "e2e_reps": e2e_reps, "poll_seconds": poll, "server": server}
        result = {"per_size": per_size, "growth_smallest_to_largest": grow,
                  "push_to_snapshot_p50_seconds": summary([x for r in per_size
                                                           for x in r["raw_seconds"]["e2e"]])["median"]}
        path = write_result("sync", stack.machine, params, result, results_dir)
        print(f"\nresult: {path}")
        return {"machine": stack.machine, "params": params, "results": result, "table": render(per_size, grow)}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="commit counts, comma-separated")
    parser.add_argument("--reps", type=int, default=9, help="in-process syncs (and fetches) per size")
    parser.add_argument("--e2e-reps", type=int, default=7, help="end-to-end pushes per size")
    parser.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    run([int(s) for s in args.sizes.split(",") if s], args.reps, args.e2e_reps, server=args.server,
        results_dir=args.results_dir, keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
