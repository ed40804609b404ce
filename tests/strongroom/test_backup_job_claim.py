"""A whole-workspace backup job planned twice at once (a redelivered task) is planned once."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy import func, select

import strongroom.backup as backup
from strongroom.jobs import create_job, view_job
from strongroom.ports import RecordingDispatcher
from strongroom.store.models import JobItem, Repository, Tenant



def test_two_copies_of_a_backup_job_add_its_items_once(shared_ctx, monkeypatch):
    with shared_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid="{%s}" % uuid.uuid4(), workspace_slug="ws")  # the session's database
        s.add(tenant)
        s.flush()
        s.add_all(Repository(tenant_id=tenant.id, uuid="{%s}" % uuid.uuid4(), slug=f"r{i}", vault_path=f"x/r{i}.git")
                  for i in range(3))
        job_id, tenant_id = create_job(s, tenant.id, kind="backup_all", trigger="sweep").id, tenant.id
    both_inside = threading.Barrier(2, timeout=10)
    # The inventory talks to the host; here both copies just meet inside it, past the "planned?" check.
    monkeypatch.setattr(backup, "inventory", lambda ctx, tid: both_inside.wait())
    planned, dispatcher = [], RecordingDispatcher()
    copies = [threading.Thread(target=lambda: planned.append(backup.run_backup_job(shared_ctx, job_id, dispatcher)))
              for _ in range(2)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join(30)
    assert sorted(planned) == [0, 3]
    with shared_ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(JobItem).where(JobItem.job_id == job_id)) == 3
        assert set(s.scalars(select(Repository.requested_gen).where(Repository.tenant_id == tenant_id))) == {1}
        assert view_job(s, tenant_id, job_id).total == 3
    assert len(dispatcher.calls) == 3
