import json
from datetime import timedelta

from strongroom.events import process_event
from strongroom.ports import RecordingDispatcher
from strongroom.store.models import Event, Repository, Tenant, utcnow

WS = "{00000000-0000-0000-0000-0000000000aa}"
REPO = "{00000000-0000-0000-0000-0000000000bb}"


def _push(tenant_id: str, received_at, ws: str = WS, repo: str = REPO) -> Event:
    data = {"push": {"changes": []}, "repository": {"type": "repository", "uuid": repo, "full_name": "ws/r",
                                                    "name": "r", "workspace": {"uuid": ws, "slug": "ws"}}}
    return Event(tenant_id=tenant_id, source="connect", delivery_id=None, event_key="repo:push",
                 payload_json=json.dumps(data), received_at=received_at)


def test_a_push_received_before_the_deletion_does_not_undo_it(unit_ctx):
    deleted_at = utcnow()
    with unit_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid=WS, workspace_slug="ws")
        s.add(tenant)
        s.flush()
        s.add(Repository(tenant_id=tenant.id, uuid=REPO, slug="r", vault_path="x/y.git", deleted_upstream=True,
                         deleted_at=deleted_at))
        stale, fresh = _push(tenant.id, deleted_at - timedelta(seconds=1)), _push(tenant.id, deleted_at + timedelta(seconds=1))
        s.add_all([stale, fresh])
    dispatcher = RecordingDispatcher()
    process_event(unit_ctx, stale.id, dispatcher)
    with unit_ctx.db.session() as s:
        assert s.get(Repository, s.query(Repository.id).scalar()).deleted_upstream is True
    assert dispatcher.calls == []
    process_event(unit_ctx, fresh.id, dispatcher)  # a push after the deletion: the repository is back
    with unit_ctx.db.session() as s:
        assert s.get(Repository, s.query(Repository.id).scalar()).deleted_upstream is False
    assert [c[0] for c in dispatcher.calls] == ["sync_repository"]


def test_two_copies_of_one_event_task_apply_it_once(shared_ctx, monkeypatch):
    """The janitor may re-dispatch an event a worker is still applying: the copy must wait, then skip."""
    import threading
    import uuid

    import strongroom.events as events

    ws, repo = "{%s}" % uuid.uuid4(), "{%s}" % uuid.uuid4()  # the session's database: fresh ids
    with shared_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid=ws, workspace_slug="ws")
        s.add(tenant)
        s.flush()
        s.add(Repository(tenant_id=tenant.id, uuid=repo, slug="r", vault_path="x/y.git"))
        event = _push(tenant.id, utcnow(), ws, repo)
        s.add(event)
    inside, release, real = threading.Event(), threading.Event(), events._apply

    def held(*args, **kwargs):
        inside.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(events, "_apply", held)
    outcomes, dispatcher = [], RecordingDispatcher()
    first = threading.Thread(target=lambda: outcomes.append(process_event(shared_ctx, event.id, dispatcher)))
    first.start()
    assert inside.wait(10)
    inside.clear()
    second = threading.Thread(target=lambda: outcomes.append(process_event(shared_ctx, event.id, dispatcher)))
    second.start()
    entered_twice = inside.wait(1.0)  # without a claim the copy applies the event alongside the first
    release.set()
    first.join(30)
    second.join(30)
    assert not entered_twice
    assert sorted(outcomes) == ["repo:push", "skipped"]
    with shared_ctx.db.session() as s:
        assert s.query(Repository.requested_gen).filter(Repository.uuid == repo).scalar() == 1
        assert s.get(Event, event.id).attempts == 1
    assert [c[0] for c in dispatcher.calls] == ["sync_repository"]
