"""The host status board: one check in flight per tenant, answers cached briefly, slow checks reported."""
from __future__ import annotations

import threading

from harness import wait_for

from strongroom.status import CACHE_SECONDS, Probe, StatusBoard, _report, check_host


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_cached_per_tenant_until_they_age(unit_ctx):
    calls = []

    def check(ctx, tenant_id):
        calls.append(tenant_id)
        return _report(Probe("up"), Probe("up"))

    clock = Clock()
    board = StatusBoard(check=check, clock=clock)
    assert board.status(unit_ctx, "t1")["bitbucket_down"] is False
    board.status(unit_ctx, "t1")
    board.status(unit_ctx, "t2")
    assert calls == ["t1", "t2"]
    clock.now += CACHE_SECONDS + 1
    board.status(unit_ctx, "t1")
    assert calls == ["t1", "t2", "t1"]


def test_a_check_without_an_answer_in_time_reports_down_and_is_replaced_when_it_answers(unit_ctx):
    release, started = threading.Event(), threading.Event()
    calls = []

    def slow(ctx, tenant_id):
        calls.append(tenant_id)
        started.set()
        release.wait(30)
        return _report(Probe("up"), Probe("up"))

    board = StatusBoard(check=slow, clock=Clock())
    first = board.status(unit_ctx, "t1", wait=0.01)
    assert started.wait(30) and first["bitbucket_down"] is True and "no usable answer" in first["api"]["detail"]
    assert board.status(unit_ctx, "t1", wait=0.01) == first  # cached; no second check piles up
    release.set()
    wait_for(lambda: board.status(unit_ctx, "t1", wait=0.01)["bitbucket_down"] is False, message="the real answer")
    assert calls == ["t1"]


def test_a_crashing_check_is_reported_unknown(unit_ctx):
    def broken(ctx, tenant_id):
        raise RuntimeError("boom")

    answer = StatusBoard(check=broken, clock=Clock()).status(unit_ctx, "t1")
    assert answer["bitbucket_down"] is None and answer["api"]["state"] == "unknown"


def test_a_tenant_without_an_active_installation_is_unknown(unit_ctx):
    from strongroom.store.models import Tenant

    with unit_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid="{00000000-0000-0000-0000-000000000001}", workspace_slug="gone")
        s.add(tenant)
        s.flush()
        tenant_id = tenant.id
    answer = check_host(unit_ctx, tenant_id)
    assert answer["bitbucket_down"] is None and "not connected" in answer["api"]["detail"]
