"""(c) A burst of pushes across many repositories: fetches performed and time until all are backed up.

Default: 200 pushes across 20 repositories (10 each), pushed by 20 concurrent pushers (one per
repository) through the sandbox, each push announced by its real repo:push webhook. Strongroom runs
as in production (gunicorn, `strongroom worker` pools, git concurrency 2).

Fetches are counted at the host: a WSGI counter on the sandbox's git endpoint sees every git session
(GET info/refs) and every pack negotiation (protocol v2 `command=fetch`) Strongroom makes. Nothing in
Strongroom is changed or instrumented.

Baseline (same run, same repositories, same pushers): the naive design, one plain `git fetch` per
push into a bare mirror, run by as many fetchers as Strongroom has git workers, one writer per
mirror. Both are timed from the first push, and from the last push, to "every repository is at its
final state". The push phases differ: the sandbox delivers each webhook before the push returns, so
Strongroom's pushers also wait for the 202s; "after last push" does not depend on that.

Run: .venv/bin/python -m bench.bench_burst [--repos 20] [--pushes 200] [--history 200]
"""
from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time
from pathlib import Path

from ._gitgen import git
from ._processes import in_parallel
from ._report import header, ratio, table, write_result
from ._stack import BenchStack

WORKSPACE = "bench-burst"


def _pushers(stack: BenchStack, slugs: list[str], per_repo: int, tag: str, deliver: bool,
             on_push=None) -> float:
    """One thread per repository makes ``per_repo`` commits; returns seconds until all pushes returned."""
    def push(slug: str) -> None:
        for i in range(per_repo):
            stack.sandbox.commit(WORKSPACE, slug, files={f"burst/{tag}-{i}.txt": f"{i}\n"},
                                 message=f"{tag} push {i}", deliver=deliver)
            if on_push is not None:
                on_push(slug)

    start = time.perf_counter()
    in_parallel([lambda slug=slug: push(slug) for slug in slugs])
    return time.perf_counter() - start


def _strongroom_burst(stack: BenchStack, ws, slugs: list[str], per_repo: int) -> dict:
    before_sessions, before_fetches = stack.git_counter.snapshot()
    views = ws.api.repositories()
    counts = {slug: views[slug]["snapshot_count"] for slug in slugs}
    accepted_before = _accepted_pushes(stack)
    start = time.perf_counter()
    push_seconds = _pushers(stack, slugs, per_repo, "sr", deliver=True)
    stack.wait_backed_up(ws, slugs, timeout=600, interval=0.1)
    total = time.perf_counter() - start
    stack.wait_idle()  # follow-up rounds requested during the burst still fetch: count them too
    after_sessions, after_fetches = stack.git_counter.snapshot()
    paths = {f"/{WORKSPACE}/{slug}.git" for slug in slugs}
    views = ws.api.repositories()
    return {
        "pushes": per_repo * len(slugs), "push_phase_s": push_seconds, "all_backed_up_s": total,
        "tail_after_last_push_s": total - push_seconds,
        "git_sessions": sum(after_sessions[p] - before_sessions[p] for p in paths),
        "fetches_with_pack": sum(after_fetches[p] - before_fetches[p] for p in paths),
        "snapshots_recorded": sum(views[s]["snapshot_count"] - counts[s] for s in slugs),
        "webhooks_accepted": _accepted_pushes(stack) - accepted_before,
    }


def _accepted_pushes(stack: BenchStack) -> int:
    return sum(1 for d in stack.sandbox.deliveries
               if d.event == "repo:push" and d.status_codes and d.status_codes[-1] == 202)


class NaiveFetchers:
    """The naive design: a pool of fetchers, one plain `git fetch` per push notice, one writer per mirror."""

    def __init__(self, stack: BenchStack, slugs: list[str], fetchers: int) -> None:
        self.env = stack.origin_git_env(WORKSPACE)
        self.mirrors = {slug: stack.tmp / "naive" / f"{slug}.git" for slug in slugs}
        for slug, path in self.mirrors.items():
            git("clone", "--mirror", "--quiet", stack.origin_url(WORKSPACE, slug), str(path), env=self.env)
        self.locks = {slug: threading.Lock() for slug in slugs}
        self.work: queue.Queue = queue.Queue()
        self.seconds: list[float] = []
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(fetchers)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while (slug := self.work.get()) is not None:
            try:
                with self.locks[slug]:
                    start = time.perf_counter()
                    git("fetch", "--quiet", "--prune", "origin", cwd=self.mirrors[slug], env=self.env)
                    self.seconds.append(time.perf_counter() - start)
            except BaseException as exc:  # surfaced by drain()
                self.errors.append(exc)
            finally:
                self.work.task_done()

    def drain(self) -> None:
        """Wait until every queued fetch ran, stop the pool, re-raise the first failure."""
        self.work.join()
        for _ in self.threads:
            self.work.put(None)
        if self.errors:
            raise self.errors[0]


def _naive_burst(stack: BenchStack, slugs: list[str], per_repo: int, fetchers: int) -> dict:
    """One plain `git fetch` per push, ``fetchers`` at a time, one writer per mirror."""
    pool = NaiveFetchers(stack, slugs, fetchers)
    os.sync()
    before_sessions, before_fetches = stack.git_counter.snapshot()
    start = time.perf_counter()
    push_seconds = _pushers(stack, slugs, per_repo, "naive", deliver=False, on_push=pool.work.put)
    pool.drain()
    total = time.perf_counter() - start
    after_sessions, after_fetches = stack.git_counter.snapshot()
    paths = {f"/{WORKSPACE}/{slug}.git" for slug in slugs}
    for slug, path in pool.mirrors.items():
        final = stack.sandbox.refs(WORKSPACE, slug)["refs/heads/main"]
        if git("rev-parse", "refs/heads/main", cwd=path).strip() != final:
            raise RuntimeError(f"naive mirror of {slug} is not at the final state")
    return {"pushes": per_repo * len(slugs), "fetches": len(pool.seconds),
            "git_sessions": sum(after_sessions[p] - before_sessions[p] for p in paths),
            "fetches_with_pack": sum(after_fetches[p] - before_fetches[p] for p in paths),
            "push_phase_s": push_seconds, "all_backed_up_s": total, "tail_after_last_push_s": total - push_seconds,
            "fetch_seconds_total": sum(pool.seconds), "fetch_seconds_median": statistics.median(pool.seconds)}


def render(ours: dict, naive: dict) -> str:
    """The result as a Markdown table."""
    rows = [["Strongroom (webhook -> outbox -> workers)", ours["pushes"], ours["git_sessions"],
             ours["fetches_with_pack"], ours["snapshots_recorded"], f"{ours['push_phase_s']:.1f} s",
             f"{ours['all_backed_up_s']:.1f} s", f"{ours['tail_after_last_push_s']:.1f} s"],
            ["naive: one plain git fetch per push", naive["pushes"], naive["git_sessions"],
             naive["fetches_with_pack"], "",
             f"{naive['push_phase_s']:.1f} s", f"{naive['all_backed_up_s']:.1f} s",
             f"{naive['tail_after_last_push_s']:.1f} s"],
            ["Strongroom / naive", "", f"{ratio(ours['git_sessions'], naive['git_sessions']):.2f}x",
             f"{ratio(ours['fetches_with_pack'], naive['fetches_with_pack']):.2f}x", "", "",
             f"{ratio(ours['all_backed_up_s'], naive['all_backed_up_s']):.2f}x",
             f"{ratio(ours['tail_after_last_push_s'], naive['tail_after_last_push_s']):.2f}x"]]
    return table(["design", "pushes", "fetches (git sessions)", "fetches with a pack", "snapshots",
                  "push phase", "first push -> all backed up", "after last push"], rows)


def run(repos: int = 20, pushes: int = 200, history: int = 200, *, results_dir: Path | None = None,
        keep: bool = False) -> dict:
    """Both bursts on the same stack; return and write the result."""
    per_repo = max(1, pushes // repos)
    with BenchStack("burst", keep=keep) as stack:
        header(f"bench_burst: {per_repo * repos} pushes across {repos} repositories", stack.machine)
        stack.create_workspace(WORKSPACE)
        slugs = [f"repo-{i:02d}" for i in range(repos)]
        for slug in slugs:
            stack.create_repository(WORKSPACE, slug, history=history)
        ws = stack.install(WORKSPACE)
        stack.wait_backed_up(ws, slugs, timeout=600)
        for slug in slugs:  # create the host's work clones now, outside both timings
            stack.sandbox.commit(WORKSPACE, slug, message="warm up", deliver=True)
        stack.wait_backed_up(ws, slugs, timeout=600)
        time.sleep(1.0)
        os.sync()
        ours = _strongroom_burst(stack, ws, slugs, per_repo)
        naive = _naive_burst(stack, slugs, per_repo, stack.settings.git_concurrency)
        rendered = render(ours, naive)
        print()
        print(rendered)
        result = {"strongroom": ours, "naive": naive,
                  "fetch_ratio_strongroom_vs_naive": ratio(ours["git_sessions"], naive["git_sessions"]),
                  "time_ratio_strongroom_vs_naive": ratio(ours["all_backed_up_s"], naive["all_backed_up_s"]),
                  "tail_ratio_strongroom_vs_naive": ratio(ours["tail_after_last_push_s"],
                                                          naive["tail_after_last_push_s"])}
        params = {"repos": repos, "pushes": per_repo * repos, "history_commits": history,
                  "git_concurrency": stack.settings.git_concurrency, "pushers": repos,
                  "server": stack.server_description}
        out = write_result("burst", stack.machine, params, result, results_dir)
        print(f"\nresult: {out}")
        return {"machine": stack.machine, "params": params, "results": result, "table": rendered}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--pushes", type=int, default=200, help="total pushes, spread evenly")
    parser.add_argument("--history", type=int, default=200, help="commits per repository before the burst")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    run(args.repos, args.pushes, args.history, results_dir=args.results_dir, keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
