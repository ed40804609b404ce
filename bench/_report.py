"""Statistics, printing and the JSON result files under bench/results/."""
from __future__ import annotations

import json
import math
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ._machine import load_average, one_line

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict:
    """Median, p90, min, max, mean and count of a list of seconds."""
    return {"n": len(values), "median": statistics.median(values) if values else math.nan,
            "p90": percentile(values, 90), "min": min(values, default=math.nan),
            "max": max(values, default=math.nan), "mean": statistics.fmean(values) if values else math.nan}


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero or missing."""
    return a / b if b else math.nan


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call, on the monotonic clock."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def ms(seconds: float) -> str:
    """Seconds as a short millisecond string."""
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (also readable on a terminal)."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def write_result(name: str, machine: dict, params: dict, results: dict, out_dir: Path | None = None) -> Path:
    """Write bench/results/<name>-<database>-<broker>.json and return its path."""
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    broker = "redis" if machine["broker"] == "redis" else "filesystem"
    path = out_dir / f"{name}-{machine['database']}-{broker}.json"
    doc = {"benchmark": name, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": dict(machine, load_average_at_end=load_average()), "params": params, "results": results}
    path.write_text(json.dumps(_clean(doc), indent=2) + "\n")
    return path


def _clean(value: object) -> object:
    """JSON has no NaN: missing measurements become null; paths become strings."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def header(title: str, machine: dict) -> None:
    """Print a benchmark's title and the machine it runs on."""
    print(f"\n=== {title} ===")
    print(f"machine: {one_line(machine)}", flush=True)
