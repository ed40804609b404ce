"""The settings panel's page modules, session renewal, overview and host status, over real HTTP."""
from __future__ import annotations

import json
import re
from urllib.parse import quote

import jwt
import pytest
import requests

from harness import HostSigner, origin, sync_settled, wait_for

pytestmark = pytest.mark.integration
BOOT = re.compile(r'<script id="strongroom-boot" type="application/json">(.*?)</script>', re.S)


def page_url(stack, ws, path: str, query: str = "", *, signer: HostSigner | None = None,
             signed_query: str | None = None) -> str:
    """A page URL as Bitbucket builds it: the JWT signs the path and every other query parameter."""
    signer = signer or HostSigner(ws.client_key, ws.shared_secret)
    signed = query if signed_query is None else signed_query
    token = signer.token("GET", path + (f"?{signed}" if signed else ""))
    return f"{stack.base_url}{path}?{query + '&' if query else ''}jwt={token}"


def boot_of(response: requests.Response) -> dict:
    match = BOOT.search(response.text)
    assert match, response.text[:500]
    return json.loads(match.group(1))


def bearer(stack, token: str, method: str = "GET", path: str = "/api/v1/installation") -> requests.Response:
    return requests.request(method, stack.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def assert_error_page(response: requests.Response, ws) -> None:
    assert response.status_code == 401, response.text[:300]
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Strongroom cannot open this page" in response.text
    assert "strongroom-boot" not in response.text and ws.slug not in response.text and ws.uuid not in response.text


def test_admin_page_verifies_the_host_jwt_and_hands_over_a_working_session(install_workspace, stack):
    ws = install_workspace(repos=0)
    response = requests.get(page_url(stack, ws, "/panel/admin"), timeout=30)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    host = origin(stack.sandbox.web_url)
    assert f"frame-ancestors {host}" in response.headers["Content-Security-Policy"]
    assert f'src="{stack.sandbox.web_url}/atlassian-connect/all.js"' in response.text
    boot = boot_of(response)
    assert boot["view"] == "workspace" and boot["workspace"]["slug"] == ws.slug
    assert bearer(stack, boot["token"]).json()["workspace"]["uuid"] == ws.uuid


def test_configure_page_accepts_unknown_extra_parameters_as_part_of_the_qsh(install_workspace, stack):
    ws = install_workspace(repos=0)
    query = "xdm_e=https%3A%2F%2Fbitbucket.org&cp=&lic=none&cv=1.0"
    assert requests.get(page_url(stack, ws, "/panel/configure", query), timeout=30).status_code == 200
    changed = page_url(stack, ws, "/panel/configure", "xdm_e=https%3A%2F%2Fevil.example&cp=&lic=none&cv=1.0",
                       signed_query=query)
    assert_error_page(requests.get(changed, timeout=30), ws)


def test_tampered_missing_foreign_or_expired_page_jwt_shows_an_error_not_data(install_workspace, stack):
    ws = install_workspace(repos=1)
    other = install_workspace(repos=0)
    good = page_url(stack, ws, "/panel/admin")
    head, payload, sig = good.split("jwt=")[1].split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["iss"] = claims["aud"] = other.client_key  # claim to be another installation, same signature
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    tampered = good.split("jwt=")[0] + f"jwt={head}.{forged}.{sig}"
    wrong_secret = page_url(stack, ws, "/panel/admin", signer=HostSigner(ws.client_key, other.shared_secret))
    other_page = page_url(stack, ws, "/panel/configure").replace("/panel/configure", "/panel/admin")
    expired = HostSigner(ws.client_key, ws.shared_secret).token("GET", "/panel/admin", lifetime=-120)
    for url in (tampered, f"{stack.base_url}/panel/admin", f"{stack.base_url}/panel/admin?jwt=not.a.jwt",
                wrong_secret, other_page, f"{stack.base_url}/panel/admin?jwt={expired}"):
        assert_error_page(requests.get(url, timeout=30), ws)


def test_repository_page_shows_one_repository(install_workspace, stack):
    ws = install_workspace(repos=1)
    uuid = ws.repos[0]["uuid"]
    response = requests.get(page_url(stack, ws, "/panel/repository", f"repoUuid={quote(uuid, safe='')}"), timeout=30)
    boot = boot_of(response)
    assert response.status_code == 200 and boot["view"] == "repository" and boot["repository"] == uuid
    bad = requests.get(page_url(stack, ws, "/panel/repository", "repoUuid=nope"), timeout=30)
    assert bad.status_code == 400 and "strongroom-boot" not in bad.text


def test_panel_session_renews_and_needs_authentication(install_workspace, stack):
    ws = install_workspace(repos=0)
    token = boot_of(requests.get(page_url(stack, ws, "/panel/admin"), timeout=30))["token"]
    renewed = bearer(stack, token, "POST", "/api/v1/session")
    assert renewed.status_code == 200 and renewed.json()["expires_in"] > 0
    assert bearer(stack, renewed.json()["token"]).json()["workspace"]["uuid"] == ws.uuid
    anonymous = requests.post(f"{stack.base_url}/api/v1/session", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"]


def test_overview_says_whether_everything_is_protected(install_workspace, stack):
    ws = install_workspace(repos=2)

    def protected_and_settled():  # no follow-up round may turn repo-0 "syncing" after the scope change below
        if not all(sync_settled(stack.ctx, r["uuid"]) for r in ws.repos):
            return None
        overview = ws.api.get("/api/v1/overview").json()
        return overview if overview["protected"] else None
    overview = wait_for(protected_and_settled, 60, 0.3, message="every repository protected, no sync under way")
    assert overview["in_scope"] == 2 and overview["states"]["ok"] == 2 and overview["size_bytes"] > 0
    assert overview["latest_job"]["kind"] == "backup_all" and overview["connected"] is True
    uuid = ws.repos[1]["uuid"]
    ws.api.put(f"/api/v1/repositories/{uuid}/scope", {"in_scope": False})
    after = ws.api.get("/api/v1/overview").json()
    assert after["in_scope"] == 1 and after["out_of_scope"] == 1 and after["protected"] is True


def test_status_strip_reports_bitbucket_reachable_and_down(install_workspace, stack):
    up = install_workspace(repos=1)
    wait_for(lambda: up.api.get("/api/v1/overview").json()["protected"], 60, 0.3, message="backup")
    status = up.api.get("/api/v1/status").json()
    assert status["bitbucket_down"] is False, status
    assert status["api"]["state"] == "up" and status["git"]["state"] == "up"
    down = install_workspace(repos=1)
    wait_for(lambda: down.api.get("/api/v1/overview").json()["protected"], 60, 0.3, message="backup")
    token = boot_of(requests.get(page_url(stack, down, "/panel/admin"), timeout=30))["token"]
    stack.sandbox.set_down(True)
    try:
        status = bearer(stack, token, path="/api/v1/status").json()
    finally:
        stack.sandbox.set_down(False)
    assert status["bitbucket_down"] is True and status["api"]["state"] == "down", status
    # cached briefly: the same answer again, without asking Bitbucket
    assert bearer(stack, token, path="/api/v1/status").json()["checked_at"] == status["checked_at"]
