"""Interfaces the use cases need from the fronts (so the library never imports Celery)."""
from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    """Schedules follow-up work. Implementations enqueue tasks by name; call only after commit."""

    def sync_repository(self, repository_id: str) -> None: ...

    def process_event(self, event_id: str) -> None: ...

    def run_job(self, job_id: str) -> None: ...

    # Restore, recovery and drill jobs: each call sends one "baton" that runs one item, then passes itself on.
    def restore_repository(self, job_id: str, delay: float = 0) -> None: ...

    def run_recovery_item(self, job_id: str, delay: float = 0) -> None: ...

    def verify_repository(self, job_id: str, delay: float = 0) -> None: ...


class RecordingDispatcher:
    """A dispatcher that only records what it was asked to do (for unit tests and dry runs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def sync_repository(self, repository_id: str) -> None:
        self.calls.append(("sync_repository", repository_id))

    def process_event(self, event_id: str) -> None:
        self.calls.append(("process_event", event_id))

    def run_job(self, job_id: str) -> None:
        self.calls.append(("run_job", job_id))

    def restore_repository(self, job_id: str, delay: float = 0) -> None:
        self.calls.append(("restore_repository", job_id))

    def run_recovery_item(self, job_id: str, delay: float = 0) -> None:
        self.calls.append(("run_recovery_item", job_id))

    def verify_repository(self, job_id: str, delay: float = 0) -> None:
        self.calls.append(("verify_repository", job_id))
