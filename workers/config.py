"""Celery configuration derived from Settings (embedded filesystem broker, or Redis)."""
from __future__ import annotations

from strongroom.config import Settings

DEFAULT_QUEUE = "strongroom"
GIT_QUEUE = "strongroom.git"
GIT_TASKS = ("strongroom.sync_repository", "strongroom.maintain_repository",
             "strongroom.restore_repository", "strongroom.run_recovery_item", "strongroom.verify_repository")


def broker_options(settings: Settings) -> tuple[str, dict]:
    """Broker URL and transport options: Redis when configured, else a local filesystem queue."""
    if settings.redis_url:
        options = {
            # Above the longest git task, so a running sync is never redelivered to a second worker.
            "visibility_timeout": settings.git_timeout_seconds + 900,
        }
        if settings.queue_prefix:
            options["global_keyprefix"] = settings.queue_prefix
        return settings.redis_url, options
    root = settings.data_dir / "broker"
    queue, control = root / "queue", root / "control"
    for path in (queue, control):
        path.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {"data_folder_in": str(queue), "data_folder_out": str(queue),
                             "control_folder": str(control), "polling_interval": 0.2}


def beat_schedule(settings: Settings) -> dict:
    return {
        "sweep": {"task": "strongroom.sweep", "schedule": float(settings.sweep_interval_seconds)},
        "janitor": {"task": "strongroom.janitor", "schedule": float(settings.outbox_interval_seconds)},
        "maintenance": {"task": "strongroom.maintain", "schedule": float(settings.maintenance_interval_seconds)},
        "drill": {"task": "strongroom.drill_sweep", "schedule": float(settings.drill_interval_seconds)},
        "restore-janitor": {"task": "strongroom.restore_janitor", "schedule": float(settings.outbox_interval_seconds)},
    }


def celery_config(settings: Settings) -> dict:
    url, options = broker_options(settings)
    conf = {
        "broker_url": url,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {name: {"queue": GIT_QUEUE} for name in GIT_TASKS},
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.data_dir / "celerybeat-schedule"),
        "worker_hijack_root_logger": False,
    }
    if not settings.redis_url:
        conf["broker_transport"] = "workers.fs_transport:Transport"  # atomic writes, exclusive claims
    return conf
