"""HostClient against a small in-process fake host that checks every JWT independently of our code.

The fake verifies tokens with plain PyJWT and computes the expected qsh with atlassian-jwt's
``hash_url``, so a bug in strongroom.connect cannot hide behind the same bug here.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from atlassian_jwt.url_utils import hash_url

from strongroom.errors import (CredentialRejected, HostUnavailable, InvalidInput, NotFound, RateLimited,
                               RepositoryGone)
from strongroom.host.client import (ConnectCredentials, ConnectJWTAuth, ForeignOrigin, HostClient,
                                    HostRejected, MemoryTokenCache)

APP_KEY = "strongroom-test"
WS_UUID = "{acf54878-51be-473e-bf0b-0fbb12e011ad}"
WS_PATH = "%7Bacf54878-51be-473e-bf0b-0fbb12e011ad%7D"
CLIENT_KEY = f"ari:cloud:bitbucket::app/{WS_UUID}/{APP_KEY}"
SECRET = "fake-host-shared-secret-0123456789abcdef"
NOW = 1_700_000_000.0


class FakeHost:
    """Canned Bitbucket answers keyed by (method, raw path), each a list consumed in order (last sticks)."""

    def __init__(self, api_prefix: str = "") -> None:
        self.api_prefix = api_prefix
        self.routes: dict[tuple[str, str], list[tuple[int, dict, object]]] = {}
        self.hits: list[tuple[str, str]] = []
        self.auth_failures: list[str] = []
        self.tokens_issued = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval keeps shutdown() (once per test) from costing half a second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True)

    def route(self, method: str, path: str, *answers: tuple[int, dict, object]) -> None:
        self.routes[(method, path)] = list(answers)

    def answer(self, method: str, path: str) -> tuple[int, dict, object]:
        answers = self.routes.get((method, path))
        if not answers:
            return 404, {}, {"type": "error", "error": {"message": "no route"}}
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def check_jwt(self, method: str, raw_path: str, header: str | None) -> str | None:
        """Return why the request's JWT is unacceptable, or None."""
        if not header or not header.startswith("JWT "):  # Bitbucket's scheme is case-sensitive
            return f"no JWT header: {header!r}"
        relative = raw_path
        if self.api_prefix and raw_path.startswith(self.api_prefix + "/"):
            relative = raw_path[len(self.api_prefix):]
        try:
            claims = pyjwt.decode(header[4:], SECRET, algorithms=["HS256"], options={"require": ["exp", "iat"]})
        except pyjwt.PyJWTError as exc:
            return f"bad token: {exc}"
        if claims.get("iss") != APP_KEY or claims.get("sub") != CLIENT_KEY:
            return f"wrong iss/sub: {claims}"
        if claims.get("qsh") != hash_url(method, relative):
            return f"qsh mismatch for {method} {relative}"
        if not 0 < claims["exp"] - claims["iat"] <= 180:
            return "lifetime too long"
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake: FakeHost = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake.hits.append((method, self.path))
        problem = fake.check_jwt(method, self.path, self.headers.get("Authorization"))
        if problem is None and method == "POST" and urlsplit(self.path).path.endswith("/site/oauth2/access_token"):
            if parse_qs(body.decode()).get("grant_type") != ["urn:bitbucket:oauth2:jwt"]:
                problem = f"bad grant body {body!r}"
        if problem:
            fake.auth_failures.append(problem)
            self._send(401, {}, {"type": "error", "error": {"message": problem}})
            return
        status, headers, payload = fake.answer(method, self.path)
        self._send(status, headers, payload(fake) if callable(payload) else payload)

    def _send(self, status: int, headers: dict, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def _issue_token(fake: FakeHost) -> dict:
    fake.tokens_issued += 1
    return {"access_token": f"access-{fake.tokens_issued}", "expires_in": 7200, "token_type": "bearer",
            "scopes": "repository"}


@pytest.fixture
def host():
    fake = FakeHost()
    fake.thread.start()
    fake.route("POST", "/site/oauth2/access_token", (200, {}, _issue_token))
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sleeps():
    return []


def _credentials(fake: FakeHost, api_base: str | None = None) -> ConnectCredentials:
    return ConnectCredentials(app_key=APP_KEY, client_key=CLIENT_KEY, shared_secret=SECRET,
                              base_url=fake.base, base_api_url=api_base or fake.base)


@pytest.fixture
def client(host, clock, sleeps):
    return HostClient(_credentials(host), token_cache=MemoryTokenCache(), sleep=sleeps.append, clock=clock,
                      timeout=5)


# --- token exchange --------------------------------------------------------------------------

def test_access_token_exchange_is_signed_and_cached(client, host):
    assert client.access_token() == "access-1"
    assert client.access_token() == "access-1"
    assert host.hits.count(("POST", "/site/oauth2/access_token")) == 1
    assert host.auth_failures == []


def test_access_token_is_renewed_five_minutes_before_expiry(client, host, clock):
    assert client.access_token() == "access-1"
    clock.now += 7200 - 301
    assert client.access_token() == "access-1"
    clock.now += 2
    assert client.access_token() == "access-2"


def test_token_cache_is_per_client_key(host, clock):
    cache = MemoryTokenCache()
    HostClient(_credentials(host), token_cache=cache, clock=clock).access_token()
    assert cache.get(f"connect:{CLIENT_KEY}") == ("access-1", NOW + 7200)


def test_verify_credentials_always_asks_the_host_and_leaves_the_cache_alone(host, clock):
    cache = MemoryTokenCache()
    client = HostClient(_credentials(host), token_cache=cache, clock=clock)
    client.verify_credentials()
    client.verify_credentials()
    assert host.tokens_issued == 2
    assert cache.get(f"connect:{CLIENT_KEY}") is None


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_exchange_is_credential_rejected(client, host, status):
    host.route("POST", "/site/oauth2/access_token", (status, {}, {"error": "invalid_grant"}))
    with pytest.raises(CredentialRejected):
        client.access_token()


def test_exchange_with_a_wrong_secret_is_credential_rejected(host, clock):
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, "not-the-secret-the-host-knows-at-all!!", host.base, host.base)
    with pytest.raises(CredentialRejected):
        HostClient(creds, token_cache=MemoryTokenCache(), clock=clock).verify_credentials()
    assert host.auth_failures and "bad token" in host.auth_failures[0]


def test_exchange_5xx_is_retried_then_host_unavailable(client, host, sleeps):
    host.route("POST", "/site/oauth2/access_token", (503, {}, {}))
    with pytest.raises(HostUnavailable):
        client.access_token()
    assert len(sleeps) == 4
    assert host.hits.count(("POST", "/site/oauth2/access_token")) == 5


def test_exchange_429_ends_as_rate_limited(host, clock, sleeps):
    host.route("POST", "/site/oauth2/access_token", (429, {"Retry-After": "2"}, {}))
    client = HostClient(_credentials(host), token_cache=MemoryTokenCache(), clock=clock, sleep=sleeps.append,
                        max_retries=1)
    with pytest.raises(RateLimited) as info:
        client.access_token()
    assert info.value.retry_after == 2.0 and sleeps == [2.0]


def test_exchange_without_access_token_is_host_unavailable(client, host):
    host.route("POST", "/site/oauth2/access_token", (200, {}, {"token_type": "bearer"}))
    with pytest.raises(HostUnavailable):
        client.access_token()


def test_git_credentials_use_the_exchanged_token(client):
    assert client.git_credentials() == ("x-token-auth", "access-1")


# --- REST ------------------------------------------------------------------------------------

def test_get_workspace_by_uuid_is_url_encoded_with_braces(client, host):
    host.route("GET", f"/2.0/workspaces/{WS_PATH}", (200, {}, {"type": "workspace", "slug": "acme", "uuid": WS_UUID}))
    assert client.get_workspace(WS_UUID.upper())["slug"] == "acme"
    assert host.auth_failures == []


def test_get_workspace_404_is_not_found(client):
    with pytest.raises(NotFound):
        client.get_workspace("nobody")


def test_iter_repositories_follows_absolute_next_links(client, host):
    page2 = "/2.0/repositories/acme?pagelen=100&page=2"
    host.route("GET", "/2.0/repositories/acme?pagelen=100",
               (200, {}, {"pagelen": 100, "values": [{"slug": "a"}, {"slug": "b"}], "next": host.base + page2}))
    host.route("GET", page2, (200, {}, {"pagelen": 100, "page": 2, "values": [{"slug": "c"}]}))
    assert [repo["slug"] for repo in client.iter_repositories("acme")] == ["a", "b", "c"]
    assert [path for _, path in host.hits] == ["/2.0/repositories/acme?pagelen=100", page2]
    assert host.auth_failures == []


def test_iter_repositories_refuses_a_next_link_to_another_origin(client, host):
    other = FakeHost()
    other.thread.start()
    try:
        host.route("GET", "/2.0/repositories/acme?pagelen=100",
                   (200, {}, {"values": [{"slug": "a"}], "next": other.base + "/2.0/repositories/acme?page=2"}))
        repos = client.iter_repositories("acme")
        assert next(repos)["slug"] == "a"
        with pytest.raises(ForeignOrigin):
            next(repos)
        assert other.hits == []
    finally:
        other.server.shutdown()
        other.server.server_close()


def test_429_with_retry_after_is_honoured_then_succeeds(client, host, sleeps):
    host.route("GET", "/2.0/repositories/acme/widget",
               (429, {"Retry-After": "7"}, {"type": "error", "error": {"message": "Rate limit exceeded"}}),
               (200, {}, {"type": "repository", "slug": "widget"}))
    assert client.get_repository("acme", "widget")["slug"] == "widget"
    assert sleeps == [7.0]
    assert host.hits.count(("GET", "/2.0/repositories/acme/widget")) == 2


def test_429_without_retry_after_backs_off_exponentially_then_rate_limited(client, host, sleeps):
    host.route("GET", "/2.0/repositories/acme/widget", (429, {}, {}))
    with pytest.raises(RateLimited):
        client.get_repository("acme", "widget")
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps):
        assert 2 ** attempt * 0.5 <= delay <= 2 ** attempt


def test_long_retry_after_is_handed_back_instead_of_slept(client, host, sleeps):
    host.route("GET", "/2.0/repositories/acme/widget", (429, {"Retry-After": "3600"}, {}))
    with pytest.raises(RateLimited) as info:
        client.get_repository("acme", "widget")
    assert info.value.retry_after == 3600.0 and sleeps == []


def test_5xx_is_retried(client, host, sleeps):
    host.route("GET", "/2.0/repositories/acme/widget", (502, {}, {}), (500, {}, {}),
               (200, {}, {"slug": "widget"}))
    assert client.get_repository("acme", "widget") == {"slug": "widget"}
    assert len(sleeps) == 2


def test_persistent_5xx_is_host_unavailable(client, host, sleeps):
    host.route("GET", "/2.0/repositories/acme/widget", (503, {}, {}))
    with pytest.raises(HostUnavailable):
        client.get_repository("acme", "widget")
    assert len(sleeps) == 4


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_credential_rejected(client, host, status):
    host.route("GET", "/2.0/repositories/acme/widget", (status, {}, {"type": "error", "error": {"message": "no"}}))
    with pytest.raises(CredentialRejected):
        client.get_repository("acme", "widget")


def test_missing_repository_is_repository_gone(client):
    with pytest.raises(RepositoryGone):
        client.get_repository("acme", "{9a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d}")


def test_other_4xx_is_host_rejected(client, host):
    host.route("GET", "/2.0/repositories/acme/widget", (400, {}, {"type": "error", "error": {"message": "bad"}}))
    with pytest.raises(HostRejected):
        client.get_repository("acme", "widget")


def test_malformed_json_is_host_unavailable(client, host):
    host.route("GET", "/2.0/repositories/acme/widget", (200, {}, b"<html>"))
    with pytest.raises(HostUnavailable):
        client.get_repository("acme", "widget")


def test_unreachable_host_is_host_unavailable_after_retries(clock, sleeps):
    fake = FakeHost()  # bound, never served, then closed: connections are refused
    fake.server.server_close()
    client = HostClient(_credentials(fake), token_cache=MemoryTokenCache(), sleep=sleeps.append, clock=clock,
                        max_retries=2, timeout=2)
    with pytest.raises(HostUnavailable):
        client.get_workspace("acme")
    assert len(sleeps) == 2


def test_list_refs_maps_branches_and_tags(client, host):
    base = "/2.0/repositories/acme/widget/refs"
    host.route("GET", f"{base}/branches?pagelen=100",
               (200, {}, {"values": [{"name": "main", "target": {"hash": "a" * 40}}],
                          "next": f"{host.base}{base}/branches?pagelen=100&page=2"}))
    host.route("GET", f"{base}/branches?pagelen=100&page=2",
               (200, {}, {"values": [{"name": "feature/x", "target": {"hash": "b" * 40}}]}))
    host.route("GET", f"{base}/tags?pagelen=100",
               (200, {}, {"values": [{"name": "v1", "target": {"hash": "c" * 40}}, {"name": "broken"}]}))
    assert client.list_refs("acme", "widget") == {
        "refs/heads/main": "a" * 40, "refs/heads/feature/x": "b" * 40, "refs/tags/v1": "c" * 40}
    assert host.auth_failures == []


def test_list_refs_of_a_missing_repository_is_repository_gone(client):
    with pytest.raises(RepositoryGone):
        client.list_refs("acme", "gone")


def test_api_base_url_with_a_path_signs_relative_to_it(clock):
    fake = FakeHost(api_prefix="/api")
    fake.thread.start()
    try:
        fake.route("GET", f"/api/2.0/workspaces/{WS_PATH}", (200, {}, {"slug": "acme"}))
        client = HostClient(_credentials(fake, api_base=fake.base + "/api"), token_cache=MemoryTokenCache(),
                            clock=clock)
        assert client.get_workspace(WS_UUID) == {"slug": "acme"}
        assert fake.auth_failures == []
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.mark.parametrize("value", ["", "..", ".", "{not-a-uuid}", None])
def test_bad_workspace_or_repository_names_are_refused_before_any_request(client, host, value):
    with pytest.raises(InvalidInput):
        client.get_repository("acme", value)
    assert host.hits == []


# --- clone URLs ------------------------------------------------------------------------------

def test_clone_url_takes_the_https_link_without_its_user(client, host):
    repo = {"full_name": "acme/widget", "links": {"clone": [
        {"name": "ssh", "href": "git@bitbucket.org:acme/widget.git"},
        {"name": "https", "href": f"http://someone@{host.base[len('http://'):]}/acme/widget.git"}]}}
    assert client.clone_url(repo) == f"{host.base}/acme/widget.git"


def test_clone_url_ignores_links_to_other_origins(client, host):
    repo = {"full_name": "acme/widget",
            "links": {"clone": [{"name": "https", "href": "https://evil.example/acme/widget.git"}]}}
    assert client.clone_url(repo) == f"{host.base}/acme/widget.git"


def test_clone_url_falls_back_to_the_full_name(client, host):
    assert client.clone_url({"full_name": "acme/widget"}) == f"{host.base}/acme/widget.git"
    with pytest.raises(InvalidInput):
        client.clone_url({"slug": "widget"})


# --- ConnectJWTAuth --------------------------------------------------------------------------

def _prepared(url: str, method: str = "GET") -> requests.PreparedRequest:
    return requests.Request(method, url).prepare()


def test_auth_signs_api_requests_relative_to_the_api_base():
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bitbucket.org", "https://api.bitbucket.org")
    request = ConnectJWTAuth(creds, clock=lambda: NOW)(
        _prepared("https://api.bitbucket.org/2.0/repositories/my-ws?pagelen=100&page=2"))
    scheme, token = request.headers["Authorization"].split(" ")
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert scheme == "JWT"
    assert claims == {"iss": APP_KEY, "sub": CLIENT_KEY, "iat": int(NOW), "exp": int(NOW) + 180,
                      "qsh": "5d859f79a98d479e2567152ff0ae2e946bdba03ba3b2649b752d867c7272c5e4"}


def test_auth_signs_the_token_endpoint_relative_to_the_site_base():
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bitbucket.org", "https://api.bitbucket.org")
    request = ConnectJWTAuth(creds)(_prepared("https://bitbucket.org/site/oauth2/access_token", "POST"))
    claims = pyjwt.decode(request.headers["Authorization"][4:], SECRET, algorithms=["HS256"])
    assert claims["qsh"] == "f045c19462bc33df6431a1f69800ff8fc9e839dfea9d080be9f2bcd59360c73b"


@pytest.mark.parametrize("url", [
    "https://evil.example/2.0/repositories/acme",
    "http://api.bitbucket.org/2.0/repositories/acme",
    "https://api.bitbucket.org:8443/2.0/repositories/acme",
    "https://api.bitbucket.org.evil.example/2.0/repositories/acme",
    "https://bitbucket.org.evil.example/site/oauth2/access_token",
])
def test_auth_refuses_foreign_origins(url):
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bitbucket.org", "https://api.bitbucket.org")
    request = _prepared(url)
    with pytest.raises(ForeignOrigin):
        ConnectJWTAuth(creds)(request)
    assert "Authorization" not in request.headers


def test_auth_refuses_paths_outside_a_base_path():
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bb.example/site-root",
                               "https://bb.example/api")
    with pytest.raises(ForeignOrigin):
        ConnectJWTAuth(creds)(_prepared("https://bb.example/other/2.0/x"))


def test_session_auth_refuses_a_foreign_origin_even_outside_the_client(client):
    with pytest.raises(ForeignOrigin):
        client._session.get("http://127.0.0.1:9/2.0/repositories/acme", timeout=1)


def test_secrets_stay_out_of_reprs(client):
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bitbucket.org", "https://api.bitbucket.org")
    assert SECRET not in repr(creds)
    assert SECRET not in repr(ConnectJWTAuth(creds))
    client.access_token()
    assert "access-1" not in repr(client._cache)


@pytest.mark.parametrize(("field", "value"), [
    ("base_url", "ftp://bitbucket.org"), ("base_api_url", "https://user:pw@api.bitbucket.org"),
    ("base_url", "/relative"), ("shared_secret", ""), ("client_key", ""), ("app_key", ""),
])
def test_connect_credentials_validate_their_fields(field, value):
    fields = dict(app_key=APP_KEY, client_key=CLIENT_KEY, shared_secret=SECRET, base_url="https://bitbucket.org",
                  base_api_url="https://api.bitbucket.org")
    fields[field] = value
    with pytest.raises(InvalidInput):
        ConnectCredentials(**fields)


def test_connect_credentials_drop_trailing_slashes():
    creds = ConnectCredentials(APP_KEY, CLIENT_KEY, SECRET, "https://bitbucket.org/", "https://api.bitbucket.org/")
    assert (creds.base_url, creds.base_api_url) == ("https://bitbucket.org", "https://api.bitbucket.org")
