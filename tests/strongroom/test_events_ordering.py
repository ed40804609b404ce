import json
from datetime import timedelta

from strongroom.events import process_event
from strongroom.ports import RecordingDispatcher
from strongroom.store.models import Event, Repository, Tenant, utcnow

WS = "{00000000-0000-0000-0000-0000000000aa}"
REPO = "{00000000-0000-0000-0000-0000000000bb}"


def _push(tenant_id: str, received_at) -> Event:
    data = {"push": {"changes": []}, "repository": {"type": "repository", "uuid": REPO, "full_name": "ws/r",
                                                    "name": "r", "workspace": {"uuid": WS, "slug": "ws"}}}
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
