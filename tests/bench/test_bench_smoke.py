"""The benchmark scripts must not rot: run bench_sync at its smallest size against the real stack.

No timing is asserted (speed belongs in bench/ as ratios); this checks that every series was
measured and that the result file has the shape the README documents.
"""
from __future__ import annotations

import json

import pytest

from bench import bench_sync

pytestmark = pytest.mark.integration


def test_bench_sync_runs_end_to_end_at_its_smallest_size(tmp_path):
    output = bench_sync.run([20, 60], reps=1, e2e_reps=1, results_dir=tmp_path)
    written = sorted(tmp_path.glob("sync-*.json"))
    assert len(written) == 1
    doc = json.loads(written[0].read_text())
    assert doc["machine"]["git"] and doc["machine"]["cores"] and doc["machine"]["database"]
    per_size = doc["results"]["per_size"]
    assert [r["commits"] for r in per_size] == [20, 60]
    for row in per_size:
        for series in ("plain_fetch", "durable_fetch", "sync", "e2e", "ack"):
            assert row["series"][series]["n"] >= 1 and row["series"][series]["median"] > 0
        assert row["ratio_sync_vs_plain_fetch"] > 0
    assert set(doc["results"]["growth_smallest_to_largest"]) >= {"plain_fetch", "sync", "e2e"}
    assert "sync / plain" in output["table"]
