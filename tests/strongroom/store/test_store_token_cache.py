"""The encrypted per-installation token cache hands a token back only under the key it was cached with."""
from __future__ import annotations

from strongroom.store.models import Installation, Tenant
from strongroom.store.tokens import InstallationTokenCache


def _installation(ctx) -> str:
    with ctx.db.session() as s:
        tenant = Tenant(workspace_uuid="{11111111-1111-1111-1111-111111111111}", workspace_slug="acme")
        s.add(tenant)
        s.flush()
        inst = Installation(tenant_id=tenant.id, path="connect", client_key="ck", base_url="https://bitbucket.org",
                            base_api_url="https://api.bitbucket.org", status="active")
        s.add(inst)
        s.flush()
        return inst.id


def test_a_token_cached_for_one_scope_is_never_returned_for_another(unit_ctx):
    cache = InstallationTokenCache(unit_ctx.db, unit_ctx.box, _installation(unit_ctx))
    assert cache.get("connect:ck|scope=repository") is None
    cache.put("connect:ck|scope=repository", "read-token", 2e9)
    assert cache.get("connect:ck|scope=repository") == ("read-token", 2e9)
    assert cache.get("connect:ck") is None
    assert cache.get("connect:ck|scope=repository:write") is None


def test_the_token_is_encrypted_at_rest_and_a_row_without_a_key_is_a_miss(unit_ctx):
    inst_id = _installation(unit_ctx)
    cache = InstallationTokenCache(unit_ctx.db, unit_ctx.box, inst_id)
    cache.put("connect:ck|scope=repository", "read-token", 2e9)
    with unit_ctx.db.session() as s:
        inst = s.get(Installation, inst_id)
        assert "read-token" not in inst.token_enc
        inst.token_enc = unit_ctx.box.encrypt("a-token-cached-before-keys-were-kept")
    assert cache.get("connect:ck|scope=repository") is None
    cache.clear()
    assert cache.get("connect:ck|scope=repository") is None
