"""(d) `git clone` from Strongroom's backup endpoint against a clone from the origin's `git http-backend`.

For a small and a large repository (generated with git fast-import on the sandbox host, then backed
up by Strongroom through the real install flow), each rep clones, in rotating order:
- origin:   the sandbox's smart HTTP endpoint (real `git http-backend` behind a threaded werkzeug app);
- latest:   Strongroom's `{base}/git/{workspace}/{repo}.git` (gunicorn gthread, `git http-backend`
            on the mirror, access-token auth);
- snapshot: Strongroom's `{base}/git/{workspace}/{repo}/snapshots/{id}.git` of the newest snapshot.
Every clone is `git clone --bare` (no checkout: the transfer and index-pack are what differ), with
credentials in the environment. The page cache is flushed of dirty pages (sync) between clones.

Run: .venv/bin/python -m bench.bench_clone [--small 200] [--large 100000] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from ._gitgen import git
from ._report import header, ms, ratio, summary, table, timed, write_result
from ._stack import BenchStack, basic_auth_env

WORKSPACE = "bench-clone"


def _size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _clone(url: str, env: dict[str, str], dest: Path, expected: dict[str, str]) -> tuple[float, int]:
    shutil.rmtree(dest, ignore_errors=True)
    seconds, _ = timed(lambda: git("clone", "--bare", "--quiet", url, str(dest), env=env))
    refs = dict(reversed(line.split(" ", 1)) for line in git("show-ref", cwd=dest).splitlines())
    if {k: v for k, v in refs.items() if k.startswith(("refs/heads/", "refs/tags/"))} != expected:
        raise RuntimeError(f"clone of {url} does not match the expected refs")
    size = _size_bytes(dest)
    shutil.rmtree(dest, ignore_errors=True)
    os.sync()
    return seconds, size


def measure(stack: BenchStack, ws, slug: str, commits: int, reps: int) -> dict:
    """Clone one repository ``reps`` times from each source, in rotating order."""
    expected = stack.sandbox.refs(WORKSPACE, slug)
    repo_uuid = ws.api.repositories()[slug]["uuid"]
    snapshot = ws.api.newest_snapshot(repo_uuid)
    if snapshot["refs"] != expected:
        raise RuntimeError("the newest snapshot is not the host's state")
    token = ws.api.access_token()
    sources = {
        "origin": (stack.origin_url(WORKSPACE, slug), stack.origin_git_env(WORKSPACE)),
        "latest": (stack.backup_url(WORKSPACE, slug), basic_auth_env("x-token-auth", token)),
        "snapshot": (f"{stack.base_url}/git/{WORKSPACE}/{slug}/snapshots/{snapshot['id']}.git",
                     basic_auth_env("x-token-auth", token)),
    }
    names = list(sources)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    sizes: dict[str, int] = {}
    for i in range(reps):
        for name in names[i % 3:] + names[:i % 3]:
            url, env = sources[name]
            took, sizes[name] = _clone(url, env, stack.tmp / "clones" / f"{slug}-{name}.git", expected)
            seconds[name].append(took)
    stats = {n: summary(v) for n, v in seconds.items()}
    return {"commits": commits, "series": stats, "raw_seconds": seconds, "clone_bytes": sizes,
            "ratio_latest_vs_origin": ratio(stats["latest"]["median"], stats["origin"]["median"]),
            "ratio_snapshot_vs_origin": ratio(stats["snapshot"]["median"], stats["origin"]["median"])}


def render(rows_in: list[dict]) -> str:
    """The result as a Markdown table."""
    rows = []
    for r in rows_in:
        s = r["series"]
        rows.append([f"{r['commits']:,} commits ({r['clone_bytes']['origin'] / 2**20:.1f} MiB)",
                     ms(s["origin"]["median"]), ms(s["latest"]["median"]), f"{r['ratio_latest_vs_origin']:.2f}x",
                     ms(s["snapshot"]["median"]), f"{r['ratio_snapshot_vs_origin']:.2f}x"])
    return table(["repository", "origin http-backend", "Strongroom latest", "latest / origin",
                  "Strongroom snapshot", "snapshot / origin"], rows)


def run(small: int = 200, large: int = 100_000, reps: int = 3, large_blob_bytes: int = 0, small_reps: int = 9, *,
        results_dir: Path | None = None, keep: bool = False) -> dict:
    """Generate, back up and clone both repositories; return and write the result."""
    with BenchStack("clone", keep=keep) as stack:
        header("bench_clone: clone from backup vs clone from origin", stack.machine)
        stack.create_workspace(WORKSPACE)
        specs = [("small", small, 0), ("large", large, large_blob_bytes)]
        for slug, commits, blob in specs:
            stack.create_repository(WORKSPACE, slug, history=commits, blob_bytes=blob)
        ws = stack.install(WORKSPACE)
        stack.wait_backed_up(ws, [s for s, _, _ in specs], timeout=1800)
        os.sync()
        per_repo = [measure(stack, ws, "small", small, small_reps), measure(stack, ws, "large", large, reps)]
        rendered = render(per_repo)
        print()
        print(rendered)
        params = {"small_commits": small, "large_commits": large, "large_blob_bytes": large_blob_bytes,
                  "reps": reps, "small_reps": small_reps, "clone": "git clone --bare",
                  "server": stack.server_description,
                  "origin_server": "sandbox: git http-backend (CGI) behind a threaded werkzeug app"}
        result = {"per_repository": per_repo}
        out = write_result("clone", stack.machine, params, result, results_dir)
        print(f"\nresult: {out}")
        return {"machine": stack.machine, "params": params, "results": result, "table": rendered}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200, help="commits in the small repository")
    parser.add_argument("--large", type=int, default=100_000, help="commits in the large repository")
    parser.add_argument("--large-blob-bytes", type=int, default=0,
                        help="incompressible bytes per commit in the large repository (0 = a short line)")
    parser.add_argument("--reps", type=int, default=3, help="clones per source of the large repository")
    parser.add_argument("--small-reps", type=int, default=9, help="clones per source of the small repository")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    run(args.small, args.large, args.reps, args.large_blob_bytes, args.small_reps, results_dir=args.results_dir,
        keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
