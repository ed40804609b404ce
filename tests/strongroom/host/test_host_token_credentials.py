"""Token-mode and Forge credentials (REST auth, git usernames, origin binding) and the webhook signature."""
from __future__ import annotations

import base64

import pytest
import requests

from strongroom.errors import AuthError, InvalidInput
from strongroom.host.credentials import (AccessTokenCredentials, ApiTokenCredentials, ForeignOrigin,
                                         ForgeSystemCredentials, derive_base_url, token_credentials)
from strongroom.host.webhook_signature import hub_signature, verify_hub_signature

WEB, API = "https://bitbucket.org", "https://api.bitbucket.org"


def prepared(url: str, auth) -> requests.PreparedRequest:
    return requests.Request("GET", url, auth=auth).prepare()


def test_access_token_is_bearer_on_rest_and_x_token_auth_on_git():
    creds = AccessTokenCredentials("wat-secret", WEB, API)
    assert prepared(f"{API}/2.0/repositories/acme", creds.rest_auth()).headers["Authorization"] == "Bearer wat-secret"
    assert creds.git_credentials(lambda: pytest.fail("nothing to exchange")) == ("x-token-auth", "wat-secret")
    assert creds.token_grant() is None and "wat-secret" not in repr(creds) + repr(creds.rest_auth())


def test_api_token_is_basic_email_token_on_rest_and_its_own_git_user():
    creds = ApiTokenCredentials("admin@acme.example", "api-secret", WEB, API)
    header = prepared(f"{API}/2.0/workspaces/acme", creds.rest_auth()).headers["Authorization"]
    assert header == "Basic " + base64.b64encode(b"admin@acme.example:api-secret").decode()
    assert creds.git_credentials(lambda: "") == ("x-bitbucket-api-token-auth", "api-secret")
    assert "api-secret" not in repr(creds)


def test_forge_system_token_behaves_like_an_access_token():
    creds = ForgeSystemCredentials("sys-token", WEB, API)
    assert prepared(f"{WEB}/acme/repo.git/info/refs", creds.rest_auth()).headers["Authorization"] == "Bearer sys-token"
    assert creds.git_credentials(lambda: "") == ("x-token-auth", "sys-token")


@pytest.mark.parametrize("url", ["https://evil.example/2.0/x", "http://api.bitbucket.org/2.0/x",
                                 "https://api.bitbucket.org:8443/2.0/x"])
def test_tokens_are_never_attached_to_a_foreign_origin(url):
    for creds in (AccessTokenCredentials("t", WEB, API), ApiTokenCredentials("a@b.c", "t", WEB, API)):
        with pytest.raises(ForeignOrigin):
            prepared(url, creds.rest_auth())


@pytest.mark.parametrize("kind,token,email", [("access_token", "", None), ("access_token", "a b", None),
                                              ("api_token", "t", None), ("api_token", "t", "no-at-sign"),
                                              ("oauth", "t", None)])
def test_bad_token_credentials_are_refused(kind, token, email):
    with pytest.raises(InvalidInput):
        token_credentials(kind, token, email=email, base_url=WEB, base_api_url=API)


def test_base_urls_must_be_clean_origins():
    with pytest.raises(InvalidInput):
        AccessTokenCredentials("t", "https://user:pw@bitbucket.org", API)


@pytest.mark.parametrize("api,web", [("https://api.bitbucket.org", "https://bitbucket.org"),
                                     ("https://api.bitbucket.org/", "https://bitbucket.org"),
                                     ("http://127.0.0.1:9000", "http://127.0.0.1:9000")])
def test_web_origin_is_derived_from_the_api_origin(api, web):
    assert derive_base_url(api) == web


# Test vectors of reference §14 (computed with Python's hmac, independent of the code under test).
VECTORS = [
    ("my-webhook-secret", b'{"push":{"changes":[]}}',
     "sha256=28468e52f9f74de9cb81cde3ae37094b47a477d2c37d6b8746c59ef96772f7c1"),
    ("this is a really bad secret", b'{"push":{"changes":[]},"repository":{"full_name":"acme/widget"}}',
     "sha256=d6d5c514119355543fa8bff1a40c29c049fbac15af146887b6a3d0e0b1e35c47"),
    ("s3cr3t", b"", "sha256=3c81cc9496e1c25250f6ccb85f697c1bb623e3480d6538ad8cb6a6648142777d"),
]


@pytest.mark.parametrize("secret,body,expected", VECTORS)
def test_hub_signature_matches_the_reference_vectors(secret, body, expected):
    assert hub_signature(secret, body) == expected
    verify_hub_signature(secret, body, expected)
    verify_hub_signature(secret, body, expected.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize("header", [None, "", "sha256", "sha256=", "sha1=28468e52f9f74de9cb81cde3ae37094b47a477d2",
                                    "sha256=" + "0" * 64, "sha256=" + "g" * 64,
                                    "sha256=28468e52f9f74de9cb81cde3ae37094b47a477d2c37d6b8746c59ef96772f7c"])
def test_missing_malformed_or_wrong_signatures_are_refused(header):
    with pytest.raises(AuthError):
        verify_hub_signature("my-webhook-secret", b'{"push":{"changes":[]}}', header)


def test_a_signature_for_another_body_or_secret_is_refused():
    good = VECTORS[0][2]
    with pytest.raises(AuthError):
        verify_hub_signature("my-webhook-secret", b'{"push":{"changes":[ ]}}', good)
    with pytest.raises(AuthError):
        verify_hub_signature("other", VECTORS[0][1], good)
    with pytest.raises(AuthError):
        verify_hub_signature("", b"", hub_signature("", b""))
