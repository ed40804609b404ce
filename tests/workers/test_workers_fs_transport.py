"""The embedded broker's exchange tables: workers that start together must not read a half-made table."""
from __future__ import annotations

import multiprocessing

from kombu import Connection


def _connection(folder):
    options = {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
               "control_folder": str(folder / "control")}
    (folder / "queue").mkdir(parents=True, exist_ok=True)
    return Connection(transport="workers.fs_transport:Transport", transport_options=options)


def test_a_table_another_worker_has_just_created_empty_is_bound_into_not_a_crash(tmp_path):
    with _connection(tmp_path) as conn:
        channel = conn.default_channel
        (tmp_path / "control").mkdir(exist_ok=True)
        (tmp_path / "control" / "celery.pidbox.exchange").write_bytes(b"")  # upstream's first binder, mid-way
        assert channel.get_table("celery.pidbox") == []
        channel._queue_bind("celery.pidbox", "", "", "worker-a.pidbox")
        channel._queue_bind("celery.pidbox", "", "", "worker-b.pidbox")
        channel._queue_bind("celery.pidbox", "", "", "worker-a.pidbox")  # binding twice adds nothing
        assert sorted(q.queue for q in channel.get_table("celery.pidbox")) == ["worker-a.pidbox", "worker-b.pidbox"]


def _bind(folder, name):
    with _connection(folder) as conn:
        conn.default_channel._queue_bind("strongroom", "strongroom", "", name)


def test_many_workers_binding_at_once_all_end_up_in_the_table(tmp_path):
    context = multiprocessing.get_context("fork")
    names = [f"q{i}" for i in range(16)]
    procs = [context.Process(target=_bind, args=(tmp_path, name)) for name in names]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * len(procs)
    with _connection(tmp_path) as conn:
        assert sorted(q.queue for q in conn.default_channel.get_table("strongroom")) == sorted(names)
