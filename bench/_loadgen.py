"""A small HTTP load generator (used when `wrk` is not installed), run as its own process.

N keep-alive connections, one thread each, POST the same body with a fresh X-Request-UUID per request
for a fixed duration; prints one JSON line: requests, duration, non-2xx, errors and latency percentiles.
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import uuid
from urllib.parse import urlsplit


def _worker(url: str, headers: dict, body: bytes, deadline: float, out: list, errors: list) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    latencies, non2xx = [], 0
    while time.perf_counter() < deadline:
        request_headers = dict(headers, **{"X-Request-UUID": str(uuid.uuid4())})
        start = time.perf_counter()
        try:
            conn.request("POST", parts.path, body=body, headers=request_headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors.append(1)
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            continue
        latencies.append(time.perf_counter() - start)
        non2xx += not 200 <= response.status < 300
    conn.close()
    out.append((latencies, non2xx))


def main() -> None:
    """Parse arguments, run the connections until the deadline, print the BENCH_RESULT line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--headers-file", required=True)
    args = parser.parse_args()
    body = open(args.body_file, "rb").read()
    headers = dict(line.split(": ", 1) for line in open(args.headers_file).read().splitlines() if ": " in line)
    out: list = []
    errors: list = []
    start = time.perf_counter()
    threads = [threading.Thread(target=_worker, args=(args.url, headers, body, start + args.duration, out, errors))
               for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.perf_counter() - start
    latencies = sorted(x for lat, _ in out for x in lat)

    def pick(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else None

    print("BENCH_RESULT " + json.dumps({
        "requests": len(latencies), "duration_s": duration, "non2xx": sum(n for _, n in out),
        "errors": len(errors), "p50_s": pick(50), "p90_s": pick(90), "p99_s": pick(99),
        "max_s": latencies[-1] if latencies else None,
        "mean_s": sum(latencies) / len(latencies) if latencies else None}))


if __name__ == "__main__":
    main()
