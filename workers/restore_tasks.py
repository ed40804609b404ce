"""Thin Celery tasks for restores, recoveries and verification drills. Names are stable (routes, beat).

Each job task is a "baton": it runs one item of its job and re-sends itself while items remain, so a
job never occupies more git workers than it was given batons. Retries and rate limits are handled per
item inside strongroom (the item goes back to pending, the baton waits), so these tasks do not retry.
"""
from __future__ import annotations

from celery import Celery
from celery.signals import worker_ready

from strongroom import drills, recovery

from .enqueue import CeleryDispatcher


def register(app: Celery) -> None:
    """Register the restore, recovery and drill tasks on ``app``."""
    from .app import context_for

    dispatcher = CeleryDispatcher(app=app)

    @app.task(name="strongroom.restore_repository", acks_late=True)
    def restore_repository(job_id: str) -> str:
        return recovery.run_next_item(context_for(app), job_id, dispatcher)

    @app.task(name="strongroom.run_recovery_item", acks_late=True)
    def run_recovery_item(job_id: str) -> str:
        return recovery.run_next_item(context_for(app), job_id, dispatcher)

    @app.task(name="strongroom.verify_repository", acks_late=True)
    def verify_repository(job_id: str) -> str:
        return recovery.run_next_item(context_for(app), job_id, dispatcher)

    @app.task(name="strongroom.drill_sweep")
    def drill_sweep() -> int:
        return len(drills.plan_drill_sweep(context_for(app), dispatcher))

    @app.task(name="strongroom.restore_janitor")
    def restore_janitor() -> int:
        return recovery.resume_stalled(context_for(app), dispatcher)

    def resume_after_restart(sender=None, **_kwargs) -> None:
        # Batons a dead worker had taken off the queue (or was holding for a countdown) are gone;
        # re-send one per unfinished job. Extra batons are harmless: claims are atomic.
        if getattr(sender, "app", None) is app:
            recovery.resume_stalled(context_for(app), dispatcher, everything=True)

    worker_ready.connect(resume_after_restart, weak=False)
