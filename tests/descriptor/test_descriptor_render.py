import json

import descriptor


def test_render_fills_base_url_and_key_everywhere():
    d = descriptor.render("https://backup.example.com/bb/", "my-key")
    assert d["baseUrl"] == "https://backup.example.com/bb" and d["key"] == "my-key"
    assert "${" not in json.dumps(d)


def test_descriptor_is_least_privilege_and_subscribes_repository_events():
    d = descriptor.render("https://x.example", "k")
    assert d["authentication"] == {"type": "jwt"} and d["contexts"] == ["account"]
    # repository:write pushes restored refs; repository:admin creates a repository (restore to new); no delete
    assert set(d["scopes"]) == {"account", "repository", "repository:write", "repository:admin"}
    events = {w["event"] for w in d["modules"]["webhooks"]}
    assert events == {"repo:push", "repo:created", "repo:deleted", "repo:updated", "repo:transfer", "repo:imported"}
    assert set(d["lifecycle"]) == {"installed", "uninstalled"}


def test_urls_lists_lifecycle_and_module_urls():
    urls = descriptor.urls(descriptor.render("https://x.example", "k"))
    assert "/connect/lifecycle/installed" in urls and "/connect/webhooks" in urls
