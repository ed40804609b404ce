"""Opening a panel page from a host JWT, the workspace overview, and no N+1 on the repository list."""
from __future__ import annotations

import time
import uuid as uuidlib

import jwt
import pytest
from atlassian_jwt.url_utils import hash_url
from sqlalchemy import event

from strongroom.auth import SignedRequest
from strongroom.errors import AuthError
from strongroom.panel import DEFAULT_USER, open_connect_page, workspace_overview
from strongroom.sessions import verify_session
from strongroom.store.models import Installation, Repository, Tenant
from strongroom.workspace import list_repositories

CLIENT_KEY = "ari:cloud:bitbucket::app/{ws}/strongroom-backup"
SECRET = "shared-secret-of-this-installation-0123456789"


@pytest.fixture
def tenant_id(unit_ctx) -> str:
    with unit_ctx.db.session() as s:
        tenant = Tenant(workspace_uuid=f"{{{uuidlib.uuid4()}}}", workspace_slug="acme", workspace_name="Acme")
        s.add(tenant)
        s.flush()
        s.add(Installation(tenant_id=tenant.id, path="connect", client_key=CLIENT_KEY,
                           secret_enc=unit_ctx.box.encrypt(SECRET), base_url="https://bitbucket.org",
                           base_api_url="https://api.bitbucket.org", status="active"))
        return tenant.id


def page_request(path: str, query: str = "", *, secret: str = SECRET, **claims) -> SignedRequest:
    """A page request as Bitbucket sends it (independent signing: PyJWT + atlassian_jwt)."""
    now = int(time.time())
    body = {"iss": CLIENT_KEY, "iat": now, "exp": now + 180,
            "qsh": hash_url("GET", path + (f"?{query}" if query else "")), **claims}
    token = jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")
    full = f"{query}&jwt={token}" if query else f"jwt={token}"
    args = dict(p.split("=", 1) for p in full.split("&"))
    return SignedRequest(method="GET", path=path, query=full, query_args=args)


def test_page_without_sub_or_aud_opens_for_the_default_user(unit_ctx, tenant_id):
    opening = open_connect_page(unit_ctx, page_request("/panel/admin", "lic=none&xdm_e=x"))
    assert opening.tenant_id == tenant_id and opening.user == DEFAULT_USER
    assert opening.host_base_url == "https://bitbucket.org" and opening.workspace_slug == "acme"
    session = verify_session(unit_ctx.settings, opening.session_token)
    assert (session.tenant_id, session.user) == (tenant_id, DEFAULT_USER)


def test_sub_becomes_the_session_user(unit_ctx, tenant_id):
    opening = open_connect_page(unit_ctx, page_request("/panel/admin", sub="{user-1}", aud=CLIENT_KEY))
    assert verify_session(unit_ctx.settings, opening.session_token).user == "{user-1}"


@pytest.mark.parametrize("mutate", [
    lambda: page_request("/panel/admin", secret="another-installations-secret-0123456789"),
    lambda: page_request("/panel/admin", aud="someone-else"),
    lambda: page_request("/panel/admin", qsh="0" * 64),
    lambda: page_request("/panel/admin", exp=int(time.time()) - 3600),
    lambda: SignedRequest(method="GET", path="/panel/admin", query="", query_args={}),
])
def test_invalid_page_tokens_are_refused(unit_ctx, tenant_id, mutate):
    with pytest.raises(AuthError):
        open_connect_page(unit_ctx, mutate())


def test_a_changed_parameter_breaks_the_qsh(unit_ctx, tenant_id):
    req = page_request("/panel/repository", "repoUuid=%7Babc%7D")
    forged = SignedRequest(method="GET", path=req.path, query=req.query.replace("abc", "abd"),
                           query_args=req.query_args)
    with pytest.raises(AuthError):
        open_connect_page(unit_ctx, forged)


def test_inactive_installation_cannot_open_pages(unit_ctx, tenant_id):
    with unit_ctx.db.session() as s:
        s.query(Installation).filter_by(tenant_id=tenant_id).update({"status": "uninstalled"})
    with pytest.raises(AuthError):
        open_connect_page(unit_ctx, page_request("/panel/admin"))


def add_repositories(ctx, tenant_id: str, states: list[tuple[str, str | None, bool, int]]) -> None:
    with ctx.db.session() as s:
        for i, (state, choice, gone, size) in enumerate(states):
            s.add(Repository(tenant_id=tenant_id, uuid=f"{{{uuidlib.uuid4()}}}", slug=f"r{i:04d}", name=f"r{i:04d}",
                             full_name=f"acme/r{i:04d}", vault_path=f"x/{i}.git", state=state, scope_choice=choice,
                             deleted_upstream=gone, size_bytes=size, snapshot_count=1))


def test_overview_counts_in_scope_states_and_bytes(unit_ctx, tenant_id):
    add_repositories(unit_ctx, tenant_id, [("ok", None, False, 100), ("failing", None, False, 10),
                                           ("ok", "exclude", False, 5), ("ok", None, True, 7),
                                           ("syncing", None, False, 1)])
    o = workspace_overview(unit_ctx, tenant_id)
    assert o["repositories"] == 5 and o["in_scope"] == 3 and o["out_of_scope"] == 1 and o["deleted_upstream"] == 1
    assert o["states"] == {"pending": 0, "syncing": 1, "ok": 1, "failing": 1} and o["size_bytes"] == 123
    assert o["protected"] is False and o["latest_job"] is None and o["connected"] is True


def count_queries(ctx, fn) -> int:
    seen = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731 - before_cursor_execute(conn, cursor, statement, ...)
    event.listen(ctx.db.engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", listener)
    return len(seen)


def test_repository_list_and_overview_use_a_constant_number_of_queries(unit_ctx, tenant_id):
    add_repositories(unit_ctx, tenant_id, [("ok", None, False, 1)] * 5)
    def page() -> None:
        list_repositories(unit_ctx, tenant_id, q=None, state="ok", page=1, pagelen=50)

    few = count_queries(unit_ctx, page)
    few_overview = count_queries(unit_ctx, lambda: workspace_overview(unit_ctx, tenant_id))
    add_repositories(unit_ctx, tenant_id, [("ok", None, False, 1)] * 200)
    many = count_queries(unit_ctx, page)
    assert many == few and count_queries(unit_ctx, lambda: workspace_overview(unit_ctx, tenant_id)) == few_overview
