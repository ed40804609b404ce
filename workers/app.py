"""The Celery application factory."""
from __future__ import annotations

import os

from celery import Celery

from strongroom.config import Settings
from strongroom.context import Context

from .config import celery_config


def _task_modules() -> tuple:
    from . import restore_tasks, tasks

    return (tasks, restore_tasks)


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``; tasks are registered from workers.tasks."""
    app = Celery("strongroom", set_as_current=True)
    app.conf.update(celery_config(settings))
    app.strongroom_settings = settings
    app.strongroom_contexts = {}
    for module in _task_modules():
        module.register(app)
    return app


def context_for(app: Celery) -> Context:
    """One Context per process (created after fork, never shared across processes)."""
    pid = os.getpid()
    ctx = app.strongroom_contexts.get(pid)
    if ctx is None:
        ctx = app.strongroom_contexts[pid] = Context.create(app.strongroom_settings)
    return ctx
