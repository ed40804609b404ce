"""The settings panel's page modules in the descriptor, and that each URL is served by the app."""
from __future__ import annotations

from urllib.parse import urlsplit

import descriptor


def test_page_modules_configure_admin_and_repository():
    modules = descriptor.render("https://x.example", "k")["modules"]
    configure = modules["configurePage"]
    assert isinstance(configure, dict) and configure["url"] == "/panel/configure"  # the single-module object form
    (admin,) = modules["adminPages"]
    assert admin["location"] == "org.bitbucket.account.admin" and admin["url"] == "/panel/admin"
    (repo,) = modules["repoPages"]
    assert repo["location"] == "org.bitbucket.repository.navigation"
    assert repo["url"] == "/panel/repository?repoUuid={repository.uuid}"
    assert {"condition": "has_account_permission", "target": "repository.owner",
            "params": {"permission": "admin"}} in repo["conditions"]
    keys = [configure["key"], admin["key"], repo["key"]]
    assert len(set(keys)) == 3 and all(k.replace("-", "").isalnum() for k in keys)


def test_every_page_url_is_a_route_that_demands_a_host_jwt(unit_settings, unit_ctx):
    from addon import create_app
    from strongroom.ports import RecordingDispatcher

    client = create_app(unit_settings, ctx=unit_ctx, dispatcher=RecordingDispatcher()).test_client()
    d = descriptor.render(unit_settings.base_url, unit_settings.app_key)["modules"]
    for module in (d["configurePage"], *d["adminPages"], *d["repoPages"]):
        path = urlsplit(module["url"]).path
        response = client.get(path)
        assert response.status_code == 401 and b"Strongroom cannot open this page" in response.data
        assert b"strongroom-boot" not in response.data
