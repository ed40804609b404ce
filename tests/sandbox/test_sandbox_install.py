"""The sandbox's Connect install driver: descriptor checks, lifecycle payloads and their JWTs."""
from __future__ import annotations

import time

import jwt
import pytest
from atlassian_jwt.url_utils import hash_url

from sandbox import InstallError, Sandbox


def test_install_posts_the_captured_payload_signed_for_the_app(sandbox: Sandbox, app) -> None:
    ws = sandbox.create_workspace("acme", "Acme Inc.")
    result = sandbox.install("acme", app.descriptor_url)

    [call] = app.lifecycle_calls("installed")
    body = call.body
    assert result["client_key"] == f"ari:cloud:bitbucket::app/{ws['uuid']}/test-backup" == body["clientKey"]
    assert result["shared_secret"] == body["sharedSecret"]
    assert set(body) >= {"productType", "eventType", "key", "clientKey", "sharedSecret", "publicKey", "baseUrl",
                         "baseApiUrl", "principal", "user"}
    assert (body["productType"], body["eventType"], body["key"]) == ("bitbucket", "installed", "test-backup")
    assert (body["baseUrl"], body["baseApiUrl"]) == (sandbox.web_url, sandbox.api_url)
    principal = body["principal"]
    assert principal["type"] == "team" and principal["username"] == "acme"
    assert principal["uuid"] == ws["uuid"] and principal["display_name"] == "Acme Inc."
    assert principal["links"]["self"]["href"].startswith(sandbox.api_url + "/2.0/")
    assert body["user"] == principal
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["User-Agent"].startswith("python-requests/")

    # first install: signed with the new sharedSecret, iss = aud = clientKey, qsh over the app-relative path
    assert call.error is None, call.error
    claims = call.claims
    assert claims["iss"] == claims["aud"] == body["clientKey"]
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["qsh"] == hash_url("POST", "/lifecycle/installed")
    assert jwt.get_unverified_header(call.headers["Authorization"][4:])["alg"] == "HS256"

    [inst] = sandbox.installations
    assert inst.active and inst["workspace"] == "acme" and inst.base_url == app.base_url


def test_first_install_can_be_unsigned(sandbox: Sandbox, app) -> None:
    sandbox.create_workspace("acme")
    sandbox.install("acme", app.descriptor_url, sign_first_install=False)
    [call] = app.lifecycle_calls("installed")
    assert "Authorization" not in call.headers


def test_reinstall_is_signed_with_the_previous_secret(sandbox: Sandbox, app) -> None:
    sandbox.create_workspace("acme")
    first = sandbox.install("acme", app.descriptor_url)
    second = sandbox.install("acme", app.descriptor_url)
    assert second["client_key"] == first["client_key"]
    assert second["shared_secret"] != first["shared_secret"]
    call = app.lifecycle_calls("installed")[-1]
    assert call.body["sharedSecret"] == second["shared_secret"]
    # the app verified it with the secret it had stored, i.e. the previous one
    assert call.error is None
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(call.headers["Authorization"][4:], second["shared_secret"], algorithms=["HS256"],
                   audience=second["client_key"])

    sandbox.uninstall("acme")
    third = sandbox.install("acme", app.descriptor_url)  # after an uninstall: still the preceding secret
    call = app.lifecycle_calls("installed")[-1]
    assert call.error is None
    jwt.decode(call.headers["Authorization"][4:], second["shared_secret"], algorithms=["HS256"],
               audience=third["client_key"])


def test_uninstall_posts_without_secret_and_revokes_tokens(sandbox: Sandbox, app) -> None:
    sandbox.create_workspace("acme")
    sandbox.create_repository("acme", "widget")
    creds = sandbox.install("acme", app.descriptor_url)
    token = app.exchange().json()["access_token"]
    assert app.api("GET", "/2.0/repositories/acme").status_code == 200

    sandbox.uninstall("acme")
    [call] = app.lifecycle_calls("uninstalled")
    assert call.body["eventType"] == "uninstalled" and "sharedSecret" not in call.body
    assert call.error is None and call.claims["qsh"] == hash_url("POST", "/lifecycle/uninstalled")
    assert not sandbox.installations[0].active

    import requests
    r = requests.get(f"{sandbox.api_url}/2.0/repositories/acme", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert app.api("GET", "/2.0/repositories/acme", secret=creds["shared_secret"]).status_code == 401
    assert app.exchange().status_code == 400


def test_registered_app_secret_is_every_installs_secret(tmp_path, app) -> None:
    sb = Sandbox(tmp_path / "sb", app_secret="the-registered-app-secret-0123456789").start()
    app.sandbox = sb
    try:
        sb.create_workspace("one")
        sb.create_workspace("two")
        assert sb.install("one", app.descriptor_url)["shared_secret"] == "the-registered-app-secret-0123456789"
        assert sb.install("two", app.descriptor_url)["shared_secret"] == "the-registered-app-secret-0123456789"
        assert len({i.client_key for i in sb.installations}) == 2
    finally:
        sb.stop()


@pytest.mark.parametrize("change, message", [
    ({"scopes": ["repository", "repository:everything"]}, "invalid scope"),
    ({"contexts": ["personal"]}, "contexts"),
    ({"authentication": {"type": "none"}}, "authentication"),
    ({"baseUrl": "http://backup.example.com/app"}, "https"),
    ({"lifecycle": {"uninstalled": "/x"}}, "lifecycle.installed"),
    ({"key": "bad key!"}, "key"),
])
def test_invalid_descriptors_are_refused(sandbox: Sandbox, app, change: dict, message: str) -> None:
    sandbox.create_workspace("acme")
    app.extra = change
    with pytest.raises(InstallError, match=message):
        sandbox.install("acme", app.descriptor_url)
    assert not app.received and not sandbox.installations


def test_webhook_without_its_scope_fails_the_install_but_wildcard_does_not(sandbox: Sandbox, app) -> None:
    sandbox.create_workspace("acme")
    app.scopes = ["repository"]
    app.hooks = ["repo:push", "pullrequest:created"]
    with pytest.raises(InstallError, match="pullrequest"):
        sandbox.install("acme", app.descriptor_url)
    app.hooks = ["*"]
    sandbox.install("acme", app.descriptor_url)


def test_install_fails_when_the_app_refuses(sandbox: Sandbox, app) -> None:
    sandbox.create_workspace("acme")
    app.install_status = 401
    with pytest.raises(InstallError, match="401"):
        sandbox.install("acme", app.descriptor_url)
    assert not sandbox.installations


def test_app_can_call_back_during_its_installed_callback(sandbox: Sandbox, app) -> None:
    """Apps verify new credentials by calling Bitbucket before they answer (Sentry does)."""
    sandbox.create_workspace("acme")
    seen = {}
    original = app._lifecycle

    def verifying(event: str):
        if event == "installed":
            body = __import__("flask").request.get_json()
            app.client_key = body["clientKey"]
            app.secrets[body["clientKey"]] = body["sharedSecret"]
            seen["status"] = app.api("GET", f"/2.0/workspaces/{body['principal']['uuid']}").status_code
            del app.secrets[body["clientKey"]]
        return original(event)

    app._lifecycle = verifying
    app.stop()
    app.start()
    sandbox.install("acme", app.descriptor_url)
    assert seen["status"] == 200


def test_post_lifecycle_sends_forged_calls(installed) -> None:
    sb = installed.sandbox
    resp = sb.post_lifecycle("acme", "installed", secret="not-the-secret-but-long-enough-for-hs256")
    assert resp.status_code == 204
    assert installed.lifecycle_calls("installed")[-1].error.startswith("InvalidSignatureError")
    sb.post_lifecycle("acme", "installed", unsigned=True, payload_overrides={"baseUrl": "https://evil.example"})
    forged = installed.lifecycle_calls("installed")[-1]
    assert forged.error == "no JWT" and forged.body["baseUrl"] == "https://evil.example"
    assert sb.installations[0].active  # crafted calls change nothing on the host


def test_lifecycle_token_lifetime_is_an_hour(installed) -> None:
    call = installed.lifecycle_calls("installed")[0]
    assert abs(call.claims["iat"] - time.time()) < 60


def test_install_link_redirects_with_the_client_key(sandbox: Sandbox, app) -> None:
    import requests
    sandbox.create_workspace("acme")
    r = requests.get(f"{sandbox.web_url}/site/addons/authorize", allow_redirects=False,
                     params={"descriptor_uri": app.descriptor_url, "redirect_uri": f"{app.base_url}/done"})
    assert r.status_code == 302
    assert r.headers["Location"].startswith(f"{app.base_url}/done?client_key=ari%3Acloud%3Abitbucket")
    assert sandbox.installation("acme").active and app.lifecycle_calls("installed")
