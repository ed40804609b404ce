"""The sandbox's REST 2.0 API: Connect JWT auth, pagination, addressing, visibility, errors."""
from __future__ import annotations

import time
from urllib.parse import quote

import jwt
import requests

from sandbox import Sandbox


def test_repository_listing_pages_through_absolute_next_links(installed) -> None:
    sb: Sandbox = installed.sandbox
    for name in ("alpha", "beta", "gamma", "delta"):
        sb.create_repository("acme", name, commits=0, deliver=False)

    first = installed.api("GET", "/2.0/repositories/acme", params={"pagelen": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert (page["pagelen"], page["size"], page["page"]) == (2, 5, 1)
    names = [v["name"] for v in page["values"]]
    pages = 1
    while "next" in page:
        assert page["next"].startswith(sb.api_url + "/2.0/repositories/acme?")
        # the app follows `next` verbatim and signs exactly that URL
        page = installed.api("GET", page["next"][len(sb.api_url):]).json()
        names += [v["name"] for v in page["values"]]
        pages += 1
    assert pages == 3 and "next" not in page
    assert sorted(names) == ["alpha", "beta", "delta", "gamma", "widget"]


def test_repository_object_has_type_and_absolute_links(installed) -> None:
    sb: Sandbox = installed.sandbox
    repo = installed.api("GET", "/2.0/repositories/acme/widget").json()
    assert repo["type"] == "repository" and repo["full_name"] == "acme/widget"
    assert repo["workspace"]["type"] == "workspace" and repo["owner"]["username"] == "acme"
    assert repo["mainbranch"] == {"type": "branch", "name": "main"}
    assert repo["links"]["self"]["href"] == f"{sb.api_url}/2.0/repositories/acme/widget"
    clone = {c["name"]: c["href"] for c in repo["links"]["clone"]}
    assert clone["https"] == f"{sb.web_url}/acme/widget.git" and "ssh" in clone


def test_workspace_and_repository_by_uuid_slug_and_trailing_slash(installed) -> None:
    ws = installed.api("GET", "/2.0/workspaces/acme").json()
    assert ws["type"] == "workspace" and ws["slug"] == "acme"
    by_uuid = installed.api("GET", f"/2.0/workspaces/{quote(ws['uuid'], safe='')}")
    assert by_uuid.status_code == 200 and by_uuid.json()["uuid"] == ws["uuid"]
    repo = installed.api("GET", "/2.0/repositories/acme/widget").json()
    path = f"/2.0/repositories/{quote(ws['uuid'], safe='')}/{quote(repo['uuid'], safe='')}/"
    again = installed.api("GET", path)
    assert again.status_code == 200, again.text
    assert again.json()["uuid"] == repo["uuid"]


def test_wrong_qsh_expired_and_misplaced_jwts_are_401(installed) -> None:
    sb: Sandbox = installed.sandbox
    assert installed.api("GET", "/2.0/repositories/acme", qsh_path="/2.0/repositories/other").status_code == 401
    # qsh must cover the query too
    assert installed.api("GET", "/2.0/repositories/acme", params={"page": 2},
                         qsh_path="/2.0/repositories/acme").status_code == 401
    old = int(time.time()) - 3600
    assert installed.api("GET", "/2.0/repositories/acme", iat=old, exp=old + 180).status_code == 401
    assert installed.api("GET", "/2.0/repositories/acme", secret="wrong-secret-wrong-secret-wrong-secret").status_code == 401
    assert installed.api("GET", "/2.0/repositories/acme", iss="someone-else").status_code == 401
    assert installed.api("GET", "/2.0/repositories/acme", sub="connection:1").status_code == 401

    url = f"{sb.api_url}/2.0/repositories/acme"
    token = installed.token("GET", "/2.0/repositories/acme")
    assert requests.get(url, params={"jwt": token}).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert requests.get(url).status_code == 401
    unsigned = jwt.encode(jwt.decode(token, options={"verify_signature": False}), None, algorithm="none")
    assert requests.get(url, headers={"Authorization": f"JWT {unsigned}"}).status_code == 401
    body = requests.get(url).json()
    assert body["type"] == "error" and body["error"]["message"]


def test_another_workspace_is_invisible(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_workspace("rival")
    sb.create_repository("rival", "secret-sauce", deliver=False)
    r = installed.api("GET", "/2.0/repositories/rival/secret-sauce")
    assert r.status_code == 404 and r.json()["type"] == "error"
    assert installed.api("GET", "/2.0/workspaces/rival").status_code == 404
    listing = installed.api("GET", "/2.0/repositories/rival")
    assert listing.status_code == 200 and listing.json()["values"] == []
    assert installed.api("GET", "/2.0/workspaces").status_code == 403


def test_refs_branches_and_tags(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.commit("acme", "widget", branch="feature/x", deliver=False)
    tag_oid = sb.create_tag("acme", "widget", "v1.0", annotated=True, message="Release 1.0\n", deliver=False)
    sb.create_tag("acme", "widget", "light", deliver=False)
    main = sb.refs("acme", "widget")["refs/heads/main"]

    branches = installed.api("GET", "/2.0/repositories/acme/widget/refs/branches/").json()
    assert [b["name"] for b in branches["values"]] == ["feature/x", "main"]
    b = branches["values"][1]
    assert b["type"] == "branch" and b["target"]["type"] == "commit" and b["target"]["hash"] == main

    tags = {t["name"]: t for t in installed.api("GET", "/2.0/repositories/acme/widget/refs/tags").json()["values"]}
    assert tags["v1.0"]["type"] == "tag"
    assert tags["v1.0"]["target"]["hash"] == main != tag_oid  # REST gives the peeled commit
    assert sb.refs("acme", "widget")["refs/tags/v1.0"] == tag_oid  # git gives the tag object
    assert tags["v1.0"]["message"].startswith("Release 1.0") and tags["v1.0"]["tagger"]["raw"]
    assert tags["light"]["message"] is None and tags["light"]["tagger"] is None

    refs = installed.api("GET", "/2.0/repositories/acme/widget/refs", params={"q": 'name ~ "v1"'}).json()
    assert [r["name"] for r in refs["values"]] == ["v1.0"]
    one = installed.api("GET", "/2.0/repositories/acme/widget/refs/branches/feature/x")
    assert one.status_code == 200 and one.json()["name"] == "feature/x"


def test_query_sort_and_pagelen_limits(installed) -> None:
    sb: Sandbox = installed.sandbox
    for name in ("api-server", "api-client", "website"):
        sb.create_repository("acme", name, commits=0, deliver=False)
    r = installed.api("GET", "/2.0/repositories/acme", params={"q": 'name ~ "api"', "sort": "-name"})
    assert [v["name"] for v in r.json()["values"]] == ["api-server", "api-client"]
    assert installed.api("GET", "/2.0/repositories/acme", params={"pagelen": 101}).status_code == 400
    assert installed.api("GET", "/2.0/repositories/acme", params={"q": 'name ~ "unterminated'}).status_code == 400


def test_scopes_are_enforced(installed) -> None:
    assert installed.api("GET", "/2.0/repositories/acme/widget/hooks").status_code == 200
    r = installed.api("POST", "/2.0/repositories/acme/new-repo", json_body={"is_private": True})
    assert r.status_code == 403  # creating needs repository:admin
    assert "scope" in r.json()["error"]["message"]


def test_create_repository_over_rest(sandbox: Sandbox, app) -> None:
    app.scopes = ["repository", "repository:admin"]
    sandbox.create_workspace("acme")
    sandbox.install("acme", app.descriptor_url)
    r = app.api("POST", "/2.0/repositories/acme/fresh", json_body={"is_private": True, "project": {"key": "PROJ"}})
    assert r.status_code == 200, r.text
    assert r.json()["slug"] == "fresh" and r.json()["mainbranch"] is None
    assert [w.body["event"] for w in app.webhooks()] == ["repo:created"]
    again = app.api("POST", "/2.0/repositories/acme/fresh", json_body={})
    assert again.status_code == 400


def test_rate_limit_answers_429_with_retry_after(tmp_path, app) -> None:
    sb = Sandbox(tmp_path / "sb", rate_limit=3, rate_window=60).start()
    app.sandbox = sb
    try:
        sb.create_workspace("acme")
        sb.create_repository("acme", "widget", deliver=False)
        sb.install("acme", app.descriptor_url)
        codes = [app.api("GET", "/2.0/repositories/acme").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = app.api("GET", "/2.0/repositories/acme/widget")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["message"] == "Rate limit for this resource has been exceeded"
        assert app.api("GET", "/2.0/workspaces/acme").status_code == 200  # outside /2.0/repositories
        # a token is a separate principal with its own budget
        token = app.exchange().json()["access_token"]
        ok = requests.get(f"{sb.api_url}/2.0/repositories/acme", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    finally:
        sb.stop()


def test_outage_answers_503_everywhere(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.set_down(True)
    assert installed.api("GET", "/2.0/repositories/acme").status_code == 503
    assert installed.exchange().status_code == 503
    assert requests.get(f"{sb.web_url}/acme/widget.git/info/refs?service=git-upload-pack").status_code == 503
    sb.set_down(False)
    assert installed.api("GET", "/2.0/repositories/acme").status_code == 200


def test_qsh_covers_encoded_queries_exactly_as_sent(installed) -> None:
    """Spaces, quotes, `+`, `*` and repeated keys: canonicalised per the Atlassian rules (§3.4)."""
    params = [("q", 'name ~ "wid" AND is_private = true'), ("sort", "-name"), ("fields", "a*b+c"),
              ("state", "OPEN"), ("state", "MERGED")]
    r = installed.api("GET", "/2.0/repositories/acme", params=params)
    assert r.status_code == 200, r.text
    assert [v["name"] for v in r.json()["values"]] == ["widget"]
    r = installed.api("GET", "/2.0/repositories/acme/widget/pullrequests", params=params[3:])
    assert r.status_code == 200 and r.json()["values"] == []


def test_update_and_delete_over_rest(sandbox: Sandbox, app) -> None:
    app.scopes = ["repository", "repository:admin", "repository:delete"]
    sandbox.create_workspace("acme")
    sandbox.create_repository("acme", "widget")
    sandbox.install("acme", app.descriptor_url)
    r = app.api("PUT", "/2.0/repositories/acme/widget", json_body={"description": "Widgets", "name": "Gadget"})
    assert r.status_code == 200, r.text
    assert (r.json()["slug"], r.json()["description"]) == ("gadget", "Widgets")
    [updated] = app.webhooks("repo:updated")
    changes = updated.body["data"]["changes"]
    assert changes["name"] == {"old": "widget", "new": "Gadget"} and changes["description"]["new"] == "Widgets"
    assert app.api("DELETE", "/2.0/repositories/acme/gadget").status_code == 204
    assert app.api("GET", "/2.0/repositories/acme/gadget").status_code == 404
    assert app.webhooks()[-1].body["event"] == "repo:deleted"


# (query as sent, canonical query) from Atlassian's interoperability vectors (bitbucket-platform.md §3.5)
OFFICIAL_QUERY_VECTORS = [
    ("param=some+spaces+in+this+parameter", "param=some%20spaces%20in%20this%20parameter"),
    ("query=connect*", "query=connect%2A"),
    ("director=%E5%AE%AE%E5%B4%8E+%E9%A7%BF", "director=%E5%AE%AE%E5%B4%8E%20%E9%A7%BF"),
    ("tuples=1%2C2%2C3&tuples=6%2C5%2C4&tuples=7%2C9%2C8", "tuples=1%2C2%2C3,6%2C5%2C4,7%2C9%2C8"),
    ("title=1+%2B+1+equals+3", "title=1%20%2B%201%20equals%203"),
    ("eta=in+%7E3+days", "eta=in%20~3%20days"),
    ("rfc=+%3C%3E%22%23%25%7B%7D%7C%5C%5E%7E%5B%5D%60", "rfc=%20%3C%3E%22%23%25%7B%7D%7C%5C%5E~%5B%5D%60"),
    ("notmuch=", "notmuch="),
    ("ids=-1&ids=1&ids=10&ids=2&ids=20", "ids=-1,1,10,2,20"),
    ("c=&c=+&c=%2520&c=%2B", "c=,%20,%2520,%2B"),
    ("a10=1&a1=2&b1=3&b10=4", "a1=2&a10=1&b1=3&b10=4"),
    ("A=A&a=a&b=b&B=B", "A=A&B=B&a=a&b=b"),
]


def test_qsh_check_matches_atlassians_official_canonical_strings(installed) -> None:
    import hashlib
    sb: Sandbox = installed.sandbox
    for raw, canonical in OFFICIAL_QUERY_VECTORS:
        qsh = hashlib.sha256(f"GET&/2.0/repositories/acme&{canonical}".encode()).hexdigest()
        token = installed.token("GET", None, qsh=qsh)
        r = requests.get(f"{sb.api_url}/2.0/repositories/acme/?{raw}", headers={"Authorization": f"JWT {token}"})
        assert r.status_code == 200, (raw, r.text)
        wrong = installed.token("GET", None, qsh=hashlib.sha256(b"GET&/2.0/repositories/acme&").hexdigest())
        r = requests.get(f"{sb.api_url}/2.0/repositories/acme?{raw}", headers={"Authorization": f"JWT {wrong}"})
        assert r.status_code == 401, raw
