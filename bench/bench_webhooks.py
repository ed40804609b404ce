"""(b) Webhook endpoint throughput and latency against an empty Flask endpoint under the same server.

Both apps run under gunicorn with the Procfile's flags (gthread, 2 workers x 8 threads), one at a
time, on the same machine. The load comes from a separate process: `wrk` (1 thread, 8 connections,
Lua script bench/webhook.lua) when it is installed, else bench/_loadgen.py (8 threads, keep-alive).
Every request is a recorded Bitbucket repo:push delivery for a repository of the installation, with a
valid Connect JWT and its own X-Request-UUID, so each one is verified, inserted into the outbox and
enqueued for real. The Celery workers are stopped during the load (their CPU would be charged to
the web tier); the run checks afterwards that the outbox and the broker grew by one per 202.

Run: .venv/bin/python -m bench.bench_webhooks [--duration 10] [--connections 8] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from ._report import header, ms, ratio, table, write_result
from ._stack import ROOT, BenchStack, GunicornServer, free_port, settings_env

WORKSPACE = "bench-hooks"
HOOK_PATH = "/connect/webhooks"


def _webhook_path(stack: BenchStack) -> str:
    """The webhook URL path, discovered from the descriptor as Bitbucket does."""
    import requests

    hooks = requests.get(f"{stack.base_url}/atlassian-connect.json", timeout=10).json()["modules"]["webhooks"]
    return next(h["url"] for h in hooks if h["event"] == "repo:push")


def _recorded_delivery(stack: BenchStack, ws) -> tuple[bytes, dict[str, str]]:
    """A real repo:push delivery (body and headers) from the sandbox, after Strongroom accepted it."""
    stack.sandbox.commit(WORKSPACE, "repo-0", message="recorded push")
    delivery = [d for d in stack.sandbox.deliveries if d.event == "repo:push"][-1]
    if delivery.status_codes[-1] != 202:
        raise RuntimeError(f"the recorded delivery was not accepted: {delivery.status_codes}")
    headers = {k: v for k, v in delivery.headers.items()
               if k.lower() not in ("authorization", "x-request-uuid", "content-length", "host")}
    return delivery.body, headers


def _outbox_rows(stack: BenchStack) -> int:
    from strongroom.store.models import Event

    with stack.ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event))


def _broker_depth(stack: BenchStack) -> int:
    """Messages waiting on the default queue (the webhook enqueues process_event there)."""
    settings = stack.settings
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        try:
            return int(client.llen(f"{settings.queue_prefix}strongroom"))
        finally:
            client.close()
    folder = settings.data_dir / "broker" / "queue"
    return sum(1 for p in folder.iterdir() if p.name.endswith(".strongroom.msg"))


def _load(url: str, files: dict[str, Path], duration: float, connections: int, loadgen: str) -> dict:
    """Run the load generator in its own process; parse its BENCH_RESULT line."""
    env = dict(os.environ, BENCH_BODY_FILE=str(files["body"]), BENCH_HEADERS_FILE=str(files["headers"]),
               BENCH_RUN=str(random.randrange(10**7, 10**8)))
    if loadgen == "wrk":
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(round(duration))}s", "--timeout", "30s",
               "-s", str(Path(__file__).with_name("webhook.lua")), url]
    else:
        cmd = [sys.executable, "-m", "bench._loadgen", url, "--connections", str(connections),
               "--duration", str(duration), "--body-file", str(files["body"]),
               "--headers-file", str(files["headers"])]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration + 120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"{cmd[0]} failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    result = json.loads(line.split(" ", 1)[1])
    result["rps"] = result["requests"] / result["duration_s"]
    return result


def _write_inputs(stack: BenchStack, body: bytes, headers: dict[str, str], token: str) -> dict[str, Path]:
    files = {"body": stack.tmp / "hook-body.json", "headers": stack.tmp / "hook-headers.txt"}
    files["body"].write_bytes(body)
    lines = [f"{k}: {v}" for k, v in headers.items()] + [f"Authorization: JWT {token}"]
    files["headers"].write_text("\n".join(lines) + "\n")
    files["headers"].chmod(0o600)  # it holds a (short-lived) JWT
    return files


def _measure_strongroom(stack: BenchStack, files: dict[str, Path], args) -> dict:
    rows, depth = _outbox_rows(stack), _broker_depth(stack)
    result = _load(stack.base_url + args.path, files, args.duration, args.connections, args.loadgen)
    accepted = result["requests"] - result["non2xx"]
    result["outbox_rows_added"] = _outbox_rows(stack) - rows
    result["messages_enqueued"] = _broker_depth(stack) - depth
    if result["non2xx"] or result["errors"] or min(result["outbox_rows_added"], result["messages_enqueued"]) < accepted:
        raise RuntimeError(f"webhook run was not clean: {result}")
    return result


def _measure_empty(stack: BenchStack, files: dict[str, Path], args) -> dict:
    env = settings_env(stack.settings)
    server = GunicornServer("bench._empty_app:app", free_port(), env, stack.tmp / "empty.log").start()
    try:
        _load(server.url + args.path, files, args.warmup, args.connections, args.loadgen)
        result = _load(server.url + args.path, files, args.duration, args.connections, args.loadgen)
    finally:
        server.stop()
    if result["non2xx"] or result["errors"]:
        raise RuntimeError(f"empty endpoint run was not clean: {result}")
    return result


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def run(duration: float = 10.0, connections: int = 8, rounds: int = 2, warmup: float = 2.0, loadgen: str = "auto",
        *, results_dir: Path | None = None, keep: bool = False) -> dict:
    """Measure both endpoints ``rounds`` times, alternating; return and write the result."""
    loadgen = ("wrk" if shutil.which("wrk") else "python") if loadgen == "auto" else loadgen
    with BenchStack("webhooks", keep=keep) as stack:
        header("bench_webhooks: webhook endpoint vs empty Flask endpoint (same gunicorn flags)", stack.machine)
        stack.create_workspace(WORKSPACE)
        stack.create_repository(WORKSPACE, "repo-0", history=10)
        ws = stack.install(WORKSPACE)
        stack.wait_backed_up(ws, ["repo-0"], timeout=120)
        path = _webhook_path(stack)
        body, headers = _recorded_delivery(stack, ws)
        stack.wait_backed_up(ws, ["repo-0"], timeout=120)
        stack.stop_workers()  # the load measures the web tier; nothing drains the queue meanwhile
        from harness import HostSigner

        token = HostSigner(ws.client_key, ws.shared_secret).token("POST", path, lifetime=3600)
        files = _write_inputs(stack, body, headers, token)
        args = argparse.Namespace(path=path, duration=duration, connections=connections, warmup=warmup,
                                  loadgen=loadgen)
        _load(stack.base_url + path, files, warmup, connections, loadgen)
        runs = {"empty": [], "webhook": []}
        for _ in range(rounds):
            runs["empty"].append(_measure_empty(stack, files, args))
            runs["webhook"].append(_measure_strongroom(stack, files, args))
        agg = {name: {k: _median([r[k] for r in rs]) for k in ("rps", "p50_s", "p90_s", "p99_s", "max_s", "mean_s")}
               for name, rs in runs.items()}
        result = {"runs": runs, "median_of_rounds": agg, "body_bytes": len(body),
                  "throughput_ratio_webhook_vs_empty": ratio(agg["webhook"]["rps"], agg["empty"]["rps"]),
                  "p50_ratio_webhook_vs_empty": ratio(agg["webhook"]["p50_s"], agg["empty"]["p50_s"]),
                  "p99_ratio_webhook_vs_empty": ratio(agg["webhook"]["p99_s"], agg["empty"]["p99_s"])}
        rendered = render(result)
        print()
        print(rendered)
        params = {"duration_s": duration, "connections": connections, "rounds": rounds, "warmup_s": warmup,
                  "loadgen": "wrk -t1 (bench/webhook.lua)" if loadgen == "wrk" else "bench/_loadgen.py (threads)",
                  "server": stack.server_description}
        out = write_result("webhooks", stack.machine, params, result, results_dir)
        print(f"\nresult: {out}")
        return {"machine": stack.machine, "params": params, "results": result, "table": rendered}


def render(result: dict) -> str:
    """The result as a Markdown table."""
    agg = result["median_of_rounds"]
    rows = [[name, f"{agg[key]['rps']:,.0f}", ms(agg[key]["p50_s"]), ms(agg[key]["p99_s"]), ms(agg[key]["max_s"])]
            for name, key in (("empty Flask endpoint", "empty"), ("Strongroom webhook", "webhook"))]
    rows.append(["webhook / empty", f"{result['throughput_ratio_webhook_vs_empty']:.2f}x",
                 f"{result['p50_ratio_webhook_vs_empty']:.2f}x", f"{result['p99_ratio_webhook_vs_empty']:.2f}x", ""])
    return table(["endpoint", "req/s", "p50", "p99", "max"], rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each endpoint")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    run(args.duration, args.connections, args.rounds, args.warmup, args.loadgen, results_dir=args.results_dir,
        keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
