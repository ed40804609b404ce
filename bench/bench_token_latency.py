"""Push-to-snapshot latency in token mode against the same measurement in Connect mode, in one run.

Two workspaces on one stack (sandbox host, Strongroom under gunicorn, the real Celery workers), each
with one repository of the same history: one installed through Connect (JWT-signed wrapped webhook),
one connected in token mode (HMAC-signed unwrapped workspace webhook, access token for git). Pushes
alternate between them; each is timed from the moment the host sends the webhook until the snapshot
is visible in GET /api/v1/repositories/{uuid}/snapshots. The ratio token/connect is the result
(1.0 = token mode costs nothing extra).

Run: .venv/bin/python -m bench.bench_token_latency [--history 1000] [--reps 15]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import requests

from ._report import header, ms, ratio, summary, table, write_result
from ._stack import BenchStack

REPO = "latency"


class OperatorSession:
    """/api/v1 with an operator key on one keep-alive session (works for every install path)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url, self.session = base_url.rstrip("/"), requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {key}"

    def newest_snapshot(self, repo_uuid: str) -> dict | None:
        from urllib.parse import quote

        url = f"{self.base_url}/api/v1/repositories/{quote(repo_uuid, safe='')}/snapshots?pagelen=1"
        values = self.session.get(url, timeout=30).json()["values"]
        return values[0] if values else None


def _connect_token_workspace(stack: BenchStack, slug: str) -> None:
    from strongroom.tokenmode import TokenCredential, connect_workspace
    from workers.enqueue import CeleryDispatcher

    token = stack.sandbox.tokenmode.issue_workspace_token(slug)
    credential = TokenCredential("access_token", token, api_base_url=stack.sandbox.api_url,
                                 base_url=stack.sandbox.web_url)
    result = connect_workspace(stack.ctx, slug, credential)
    CeleryDispatcher(stack.settings).run_job(result.job_id)


def _send(stack: BenchStack, mode: str, slug: str, data: dict) -> None:
    sb = stack.sandbox
    if mode == "connect":
        record = sb.deliver_webhook(slug, "repo:push", data)
    else:
        [record] = sb.hooks.deliver(sb.workspace(slug).uuid, "repo:push", data)
    if record is None or record.status_codes[-1] != 202:
        raise RuntimeError(f"{mode} webhook not accepted: {record and record.status_codes}")


def _push_to_snapshot(stack: BenchStack, mode: str, slug: str, api: OperatorSession, repo_uuid: str,
                      label: str, poll: float) -> float:
    sb = stack.sandbox
    before = sb.refs(slug, REPO)
    sha = sb.commit(slug, REPO, files={f"bench/{label}.txt": label}, message=f"bench {label}", deliver=False)
    ws, repo = sb.workspace(slug), sb.repository(slug, REPO)
    data = sb.events.push(ws, repo, ws.actor, before, sb.refs(slug, REPO))
    start = time.perf_counter()  # the host sends the webhook now
    _send(stack, mode, slug, data)
    while True:
        snap = api.newest_snapshot(repo_uuid)
        if snap and snap["refs"].get("refs/heads/main") == sha:
            return time.perf_counter() - start
        if time.perf_counter() - start > 120:
            raise RuntimeError(f"{mode}: push did not become a snapshot within 120 s")
        time.sleep(poll)


def run(history: int, reps: int, *, poll: float = 0.01, results_dir: Path | None = None) -> dict:
    """Build the stack, connect both workspaces, alternate pushes; print and write the ratio."""
    from strongroom.operators import create_operator_key

    with BenchStack("token-latency") as stack:
        header("bench_token_latency: push -> snapshot, token mode vs Connect", stack.machine)
        slugs = {"connect": "bench-connect", "token": "bench-token"}
        for slug in slugs.values():
            stack.create_workspace(slug)
            stack.create_repository(slug, REPO, history=history)
        stack.install(slugs["connect"])
        _connect_token_workspace(stack, slugs["token"])
        apis, uuids = {}, {}
        for mode, slug in slugs.items():
            apis[mode] = OperatorSession(stack.base_url, create_operator_key(stack.ctx, slug, "bench").key)
            uuids[mode] = stack.sandbox.repository(slug, REPO).uuid
            deadline = time.monotonic() + 600
            while not apis[mode].newest_snapshot(uuids[mode]):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: the initial backup did not finish")
                time.sleep(0.2)
        series: dict[str, list[float]] = {"connect": [], "token": []}
        for i in range(reps):
            order = ("connect", "token") if i % 2 == 0 else ("token", "connect")  # neither always goes first
            for mode in order:
                series[mode].append(_push_to_snapshot(stack, mode, slugs[mode], apis[mode], uuids[mode],
                                                      f"{mode}-{i}", poll))
        stats = {mode: summary(values) for mode, values in series.items()}
        result = {"series": stats, "raw_seconds": series,
                  "ratio_token_vs_connect_p50": ratio(stats["token"]["median"], stats["connect"]["median"]),
                  "ratio_token_vs_connect_p90": ratio(stats["token"]["p90"], stats["connect"]["p90"])}
        rows = [[mode, ms(stats[mode]["median"]), ms(stats[mode]["p90"]), ms(stats[mode]["max"])] for mode in series]
        rows.append(["token / connect", f"{result['ratio_token_vs_connect_p50']:.2f}x",
                     f"{result['ratio_token_vs_connect_p90']:.2f}x", ""])
        rendered = table(["mode", "push->snapshot p50", "p90", "max"], rows)
        print()
        print(rendered)
        params = {"history": history, "reps": reps, "poll_seconds": poll}
        path = write_result("token_latency", stack.machine, params, result, results_dir)
        print(f"\nresult: {path}")
        return {"machine": stack.machine, "params": params, "results": result, "table": rendered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1000, help="commits in each repository")
    parser.add_argument("--reps", type=int, default=15, help="pushes per mode")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    run(args.history, args.reps, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
