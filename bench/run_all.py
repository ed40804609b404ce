"""Run every benchmark of issue 3 §11 in sequence and print one Markdown summary.

Default sizes finish in about 6-8 minutes on a 2-core machine; `--big` goes further, `--quick` is
a fast end-to-end check of the scripts themselves (its numbers are too small to quote).

Run: .venv/bin/python -m bench.run_all [--quick | --big] [--only sync,webhooks,burst,clone]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import bench_burst, bench_clone, bench_sync, bench_webhooks
from ._machine import one_line
from ._report import RESULTS

PROFILES = {
    "quick": {"sync": dict(sizes=[100, 1000], reps=2, e2e_reps=2),
              "webhooks": dict(duration=2, rounds=1, warmup=1),
              "burst": dict(repos=4, pushes=20, history=20),
              "clone": dict(small=50, large=2000, reps=1, small_reps=1)},
    "default": {"sync": dict(sizes=[1000, 10_000, 100_000], reps=9, e2e_reps=7),
                "webhooks": dict(duration=10, rounds=2, warmup=2),
                "burst": dict(repos=20, pushes=200, history=200),
                "clone": dict(small=200, large=100_000, reps=3, small_reps=9)},
    "big": {"sync": dict(sizes=[1000, 10_000, 100_000, 300_000], reps=15, e2e_reps=15),
            "webhooks": dict(duration=30, rounds=3, warmup=5, connections=32),
            "burst": dict(repos=50, pushes=1000, history=1000),
            "clone": dict(small=1000, large=300_000, reps=3, small_reps=9)},
}
RUNNERS = {"sync": bench_sync.run, "webhooks": bench_webhooks.run, "burst": bench_burst.run,
           "clone": bench_clone.run}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smallest sizes (checks the scripts, not the numbers)")
    size.add_argument("--big", action="store_true", help="bigger repositories, longer load, larger burst")
    parser.add_argument("--only", default=",".join(RUNNERS), help="comma-separated subset of " + ",".join(RUNNERS))
    parser.add_argument("--results-dir", type=Path, default=None, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "big" if args.big else "default"]
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(RUNNERS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started, outputs = time.perf_counter(), {}
    for name in chosen:
        outputs[name] = RUNNERS[name](**profile[name], results_dir=args.results_dir)
    summary = render_summary(outputs, time.perf_counter() - started)
    print("\n" + summary)
    if outputs:
        machine = next(iter(outputs.values()))["machine"]
        broker = "redis" if machine["broker"] == "redis" else "filesystem"
        out = Path(args.results_dir or RESULTS) / f"summary-{machine['database']}-{broker}.md"
        out.write_text(summary + "\n")
        print(f"\nsummary: {out}")
    return 0


def render_summary(outputs: dict, seconds: float) -> str:
    """Every benchmark's table under one heading with the machine line."""
    if not outputs:
        return "(nothing ran)"
    machine = next(iter(outputs.values()))["machine"]
    parts = [f"Machine: {one_line(machine)}. Total wall time {seconds / 60:.1f} min.", ""]
    titles = {"sync": "(a) One new commit: sync vs plain `git fetch`",
              "webhooks": "(b) Webhook endpoint vs empty Flask endpoint",
              "burst": "(c) Burst of pushes across repositories",
              "clone": "(d) Clone from backup vs clone from origin"}
    for name, output in outputs.items():
        parts += [f"#### {titles[name]}", "", output["table"], ""]
    return "\n".join(parts).rstrip()


if __name__ == "__main__":
    raise SystemExit(main())
