"""Thin Celery tasks: take ids, call one strongroom function. Names are stable (routes and beat use them)."""
from __future__ import annotations

from celery import Celery

from strongroom import backup, events, janitor, maintenance
from strongroom.errors import TransientError

from .enqueue import CeleryDispatcher

RETRY = {"autoretry_for": (TransientError,), "retry_backoff": 5, "retry_backoff_max": 600,
         "retry_jitter": True, "max_retries": 10}


def register(app: Celery) -> None:
    """Register every task on ``app``."""
    from .app import context_for

    dispatcher = CeleryDispatcher(app=app)

    @app.task(name="strongroom.process_event", acks_late=True, **RETRY)
    def process_event(event_id: str) -> str:
        return events.process_event(context_for(app), event_id, dispatcher)

    @app.task(name="strongroom.run_job", acks_late=True, **RETRY)
    def run_job(job_id: str) -> int:
        return backup.run_backup_job(context_for(app), job_id, dispatcher)

    @app.task(name="strongroom.sync_repository", acks_late=True, **RETRY)
    def sync_repository(repository_id: str) -> str:
        return backup.sync_repository(context_for(app), repository_id)

    @app.task(name="strongroom.sweep")
    def sweep() -> int:
        return len(janitor.plan_sweeps(context_for(app), dispatcher))

    @app.task(name="strongroom.janitor")
    def janitor_task() -> dict:
        return janitor.redispatch_stale_work(context_for(app), dispatcher)

    @app.task(name="strongroom.maintain")
    def maintain() -> int:
        ids = maintenance.due_for_maintenance(context_for(app))
        for rid in ids:
            app.send_task("strongroom.maintain_repository", args=[rid])
        return len(ids)

    @app.task(name="strongroom.maintain_repository", acks_late=True, **RETRY)
    def maintain_repository(repository_id: str) -> str:
        return maintenance.maintain_repository(context_for(app), repository_id)
