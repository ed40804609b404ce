"""The one door from other fronts to the workers: enqueue tasks by name."""
from __future__ import annotations

from celery import Celery

from strongroom.config import Settings

from .config import celery_config

# Publishing must fail fast: the web front has already recorded the work (outbox, job rows),
# so a broker outage only delays it until the janitor re-dispatches.
_PUBLISH = {"retry": True, "retry_policy": {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2,
                                             "interval_max": 0.5}}


class CeleryDispatcher:
    """Implements strongroom.ports.Dispatcher by sending named tasks."""

    def __init__(self, settings: Settings | None = None, *, app: Celery | None = None) -> None:
        if app is None:
            app = Celery("strongroom-client", set_as_current=False)
            app.conf.update(celery_config(settings))
        self.app = app

    def _send(self, name: str, *args: str) -> None:
        self.app.send_task(name, args=list(args), **_PUBLISH)

    def sync_repository(self, repository_id: str) -> None:
        self._send("strongroom.sync_repository", repository_id)

    def process_event(self, event_id: str) -> None:
        self._send("strongroom.process_event", event_id)

    def run_job(self, job_id: str) -> None:
        self._send("strongroom.run_job", job_id)

    def _send_later(self, name: str, job_id: str, delay: float) -> None:
        self.app.send_task(name, args=[job_id], countdown=max(0.0, float(delay)) or None, **_PUBLISH)

    def restore_repository(self, job_id: str, delay: float = 0) -> None:
        self._send_later("strongroom.restore_repository", job_id, delay)

    def run_recovery_item(self, job_id: str, delay: float = 0) -> None:
        self._send_later("strongroom.run_recovery_item", job_id, delay)

    def verify_repository(self, job_id: str, delay: float = 0) -> None:
        self._send_later("strongroom.verify_repository", job_id, delay)
