"""The item runner behind restore, recovery and drill jobs: isolation, retries, resumption, progress."""
from __future__ import annotations

import pytest

from strongroom import recovery
from strongroom.errors import GitPermanentError, HostUnavailable, RateLimited
from strongroom.jobs import complete_items, create_job, fail_items, view_job
from strongroom.ports import RecordingDispatcher
from strongroom.store.models import JobItem, Repository, Tenant, utcnow


@pytest.fixture
def job(unit_ctx):
    """A recovery job of three repositories (a, b, c), none started."""
    with unit_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid="{00000000-0000-4000-8000-000000000001}", workspace_slug="acme")
        s.add(tenant)
        s.flush()
        repos = [Repository(tenant_id=tenant.id, uuid=f"{{00000000-0000-4000-8000-00000000001{i}}}", slug=slug,
                            vault_path=f"x/{slug}.git") for i, slug in enumerate("abc")]
        s.add_all(repos)
        s.flush()
        row = create_job(s, tenant.id, kind="recovery", trigger="manual", params={"items": {}})
        row.started_at = utcnow()
        s.add_all(JobItem(job_id=row.id, repository_id=r.id, requested_gen=0) for r in repos)
        return tenant.id, row.id, {r.slug: r.id for r in repos}


def outcomes(monkeypatch, plan: dict):
    """Make each repository's item raise (or not) what ``plan`` says, in order of attempts."""
    calls = []

    def fake(ctx, kind, tenant_id, repository_id, params, dispatcher):
        calls.append(repository_id)
        results = plan.get(repository_id, [])
        result = results.pop(0) if results else None
        if result is not None:
            raise result
    monkeypatch.setattr(recovery, "_execute", fake)
    return calls


def states(ctx, tenant_id, job_id) -> dict:
    with ctx.db.session() as s:
        view = view_job(s, tenant_id, job_id)
    return {i["repository"]["slug"]: (i["state"], i["attempts"]) for i in view.items} | {"_": view.state}


def drain(ctx, job_id, dispatcher, limit=20) -> None:
    for _ in range(limit):
        if recovery.run_next_item(ctx, job_id, dispatcher) == "idle":
            return


def test_a_failed_repository_does_not_stop_the_others(unit_ctx, job, monkeypatch):
    tenant_id, job_id, ids = job
    dispatcher = RecordingDispatcher()
    assert states(unit_ctx, tenant_id, job_id)["_"] == "queued"
    outcomes(monkeypatch, {ids["b"]: [GitPermanentError("the backup of acme/b is damaged")]})
    drain(unit_ctx, job_id, dispatcher)
    assert states(unit_ctx, tenant_id, job_id) == {"a": ("done", 1), "b": ("failed", 1), "c": ("done", 1),
                                                    "_": "failed"}
    with unit_ctx.db.session() as s:
        view = view_job(s, tenant_id, job_id).as_dict()
    assert view["progress"] == {"done": 3, "total": 3} and view["error"] == "1 of 3 repositories failed"
    assert view["items"][1]["error"] == "the backup of acme/b is damaged"
    assert dispatcher.calls.count(("run_recovery_item", job_id)) == 2  # the baton passed on while work remained


def test_transient_failures_are_retried_then_given_up(unit_ctx, job, monkeypatch):
    tenant_id, job_id, ids = job
    outcomes(monkeypatch, {ids["a"]: [HostUnavailable("503")] * 2,
                           ids["c"]: [HostUnavailable("503")] * recovery.MAX_ATTEMPTS})
    drain(unit_ctx, job_id, RecordingDispatcher(), limit=40)
    assert states(unit_ctx, tenant_id, job_id) == {"a": ("done", 3), "b": ("done", 1),
                                                    "c": ("failed", recovery.MAX_ATTEMPTS), "_": "failed"}


def test_a_rate_limit_puts_the_item_back_and_delays_the_baton(unit_ctx, job, monkeypatch):
    tenant_id, job_id, ids = job
    outcomes(monkeypatch, {ids["a"]: [RateLimited("429", retry_after=42.0)]})
    delays = []

    class Recording(RecordingDispatcher):
        def run_recovery_item(self, job_id, delay=0):
            delays.append(delay)

    assert recovery.run_next_item(unit_ctx, job_id, Recording()) == "pending"
    assert delays == [42.0]
    assert states(unit_ctx, tenant_id, job_id)["a"] == ("pending", 1)


def test_an_item_whose_runner_died_is_resumed(unit_ctx, job, monkeypatch):
    tenant_id, job_id, ids = job
    with unit_ctx.db.session() as s:  # claimed by a worker that was then killed: running, lock free
        item = s.query(JobItem).filter_by(job_id=job_id, repository_id=ids["a"]).one()
        item.state, item.requested_gen = "running", 1
    held = unit_ctx.locks.acquire(f"job-item:{item.id}")  # a live runner holds its lock: left alone
    dispatcher = RecordingDispatcher()
    assert recovery.resume_stalled(unit_ctx, dispatcher) == 0
    held.release()
    assert recovery.resume_stalled(unit_ctx, dispatcher) == 1
    assert dispatcher.calls == [("run_recovery_item", job_id)]
    outcomes(monkeypatch, {})
    drain(unit_ctx, job_id, dispatcher)
    assert states(unit_ctx, tenant_id, job_id) == {"a": ("done", 2), "b": ("done", 1), "c": ("done", 1),
                                                    "_": "succeeded"}


def test_syncs_never_complete_or_fail_restore_items(unit_ctx, job):
    tenant_id, job_id, ids = job
    with unit_ctx.db.session() as s:
        complete_items(s, ids["a"], 10)
        fail_items(s, ids["b"], 10, "not in scope")
    assert states(unit_ctx, tenant_id, job_id) == {"a": ("pending", 0), "b": ("pending", 0), "c": ("pending", 0),
                                                    "_": "queued"}


def test_a_finished_item_keeps_the_warnings_of_its_restore(unit_ctx, job, monkeypatch):
    tenant_id, job_id, ids = job
    said = ["the repository is in project PROJ, not PLAT: Bitbucket refused project PLAT (deleted?)"]
    monkeypatch.setattr(recovery, "_execute", lambda ctx, kind, tenant, repository_id, params, dispatcher:
                        said if repository_id == ids["b"] else None)
    drain(unit_ctx, job_id, RecordingDispatcher())
    with unit_ctx.db.session() as s:
        view = view_job(s, tenant_id, job_id).as_dict()
    assert view["state"] == "succeeded"
    assert [(i["repository"]["slug"], i["warnings"]) for i in view["items"]] == [("a", []), ("b", said), ("c", [])]
