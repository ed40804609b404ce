from sqlalchemy import select

from strongroom.context import Context
from strongroom.secrets_rotation import rotate_all
from strongroom.store.crypto import SecretBox
from strongroom.store.migrate import upgrade
from strongroom.store.models import Installation, Tenant


def test_rotation_reencrypts_every_stored_secret_under_the_new_key(unit_settings):
    old_ctx = Context.create(unit_settings.with_overrides(secret_keys=("old-key",)))
    upgrade(old_ctx.db, unit_settings.data_dir / "locks")
    with old_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid="{00000000-0000-0000-0000-000000000001}", workspace_slug="ws")
        s.add(tenant)
        s.flush()
        s.add(Installation(tenant_id=tenant.id, path="token", secret_enc=old_ctx.box.encrypt("credential"),
                           token_enc=old_ctx.box.encrypt("access"), hook_secret_enc=old_ctx.box.encrypt("hook")))
    both = Context.create(unit_settings.with_overrides(secret_keys=("new-key", "old-key")))
    assert rotate_all(both) == 3
    only_new = SecretBox(["new-key"])
    with both.db.session() as s:
        inst = s.scalars(select(Installation)).one()
        assert [only_new.decrypt(v) for v in (inst.secret_enc, inst.token_enc, inst.hook_secret_enc)] == [
            "credential", "access", "hook"]
