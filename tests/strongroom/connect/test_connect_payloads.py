"""Lifecycle and Connect webhook bodies, using the real captured payload shape (reference §2.1, §2.2)."""
from __future__ import annotations

import copy
import json

import pytest

from strongroom.connect.payloads import (ConnectWebhook, normalize_uuid, parse_connect_webhook,
                                         parse_lifecycle_payload, workspace_uuid_from_client_key)
from strongroom.errors import InvalidInput

WS_UUID = "{acf54878-51be-473e-bf0b-0fbb12e011ad}"
PRINCIPAL = {
    "type": "team", "username": "festivus-miracle", "display_name": "festivus miracle",
    "uuid": WS_UUID,
    "links": {"self": {"href": "https://api.bitbucket.org/2.0/teams/%7Bacf54878-51be-473e-bf0b-0fbb12e011ad%7D"},
              "html": {"href": "https://bitbucket.org/%7Bacf54878-51be-473e-bf0b-0fbb12e011ad%7D/"},
              "avatar": {"href": "https://bitbucket.org/account/festivus-miracle/avatar/"}},
    "is_active": True, "created_on": "2021-03-23T22:31:12.668759+00:00",
    "properties": {}, "has_2fa_enabled": None,
}
INSTALLED = {
    "productType": "bitbucket",
    "eventType": "installed",
    "key": "toolchain-dev",
    "clientKey": f"ari:cloud:bitbucket::app/{WS_UUID}/toolchain-dev",
    "sharedSecret": "You can’t spare three squares?",
    "publicKey": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCBFq+6AQAB",
    "baseUrl": "https://bitbucket.org",
    "baseApiUrl": "https://api.bitbucket.org",
    "principal": PRINCIPAL,
    "user": PRINCIPAL,
    "actor": {"type": "user", "uuid": "6ae3c307-ae59-4135-9c72-bdd06eb2010a", "account_id": "6059303e630024006fab8c2b"},
}


def _uninstalled() -> dict:
    body = copy.deepcopy(INSTALLED)
    body["eventType"] = "uninstalled"
    del body["sharedSecret"]
    return body


def _body(doc: dict) -> bytes:
    return json.dumps(doc).encode("utf-8")


def _with(**changes) -> bytes:
    doc = copy.deepcopy(INSTALLED)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return _body(doc)


def _rejected(body: bytes, event: str = "installed") -> str:
    with pytest.raises(InvalidInput) as info:
        parse_lifecycle_payload(body, event)
    return str(info.value)


# --- installed / uninstalled -----------------------------------------------------------------

def test_parses_the_captured_installed_payload():
    payload = parse_lifecycle_payload(_body(INSTALLED), "installed")
    assert payload.event_type == "installed"
    assert payload.product_type == "bitbucket"
    assert payload.key == "toolchain-dev"
    assert payload.client_key == INSTALLED["clientKey"]
    assert payload.shared_secret == "You can’t spare three squares?"
    assert payload.base_url == "https://bitbucket.org"
    assert payload.base_api_url == "https://api.bitbucket.org"
    assert payload.principal_uuid == WS_UUID
    assert payload.principal_username == "festivus-miracle"
    assert payload.principal_display_name == "festivus miracle"
    assert payload.workspace_uuid == WS_UUID
    assert payload.raw["publicKey"] == INSTALLED["publicKey"]


def test_repr_hides_the_secret_and_the_raw_body():
    text = repr(parse_lifecycle_payload(_body(INSTALLED), "installed"))
    assert "three squares" not in text
    assert "publicKey" not in text
    assert "toolchain-dev" in text


def test_parses_the_uninstalled_payload_without_a_secret():
    payload = parse_lifecycle_payload(_body(_uninstalled()), "uninstalled")
    assert payload.event_type == "uninstalled"
    assert payload.shared_secret is None


def test_uninstalled_ignores_a_secret_in_the_body():
    doc = _uninstalled()
    doc["sharedSecret"] = "not to be trusted"
    assert parse_lifecycle_payload(_body(doc), "uninstalled").shared_secret is None


def test_upper_case_principal_uuid_is_normalised():
    principal = dict(PRINCIPAL, uuid=WS_UUID.upper())
    payload = parse_lifecycle_payload(_with(principal=principal), "installed")
    assert payload.principal_uuid == WS_UUID


def test_unregistered_connection_client_key_is_accepted():
    assert parse_lifecycle_payload(_with(clientKey="connection:123"), "installed").client_key == "connection:123"


def test_trailing_slash_of_base_urls_is_dropped():
    payload = parse_lifecycle_payload(_with(baseUrl="https://bitbucket.org/", baseApiUrl="http://127.0.0.1:8765/"),
                                      "installed")
    assert payload.base_url == "https://bitbucket.org"
    assert payload.base_api_url == "http://127.0.0.1:8765"


def test_optional_principal_names_may_be_absent():
    principal = {"type": "team", "uuid": WS_UUID}
    payload = parse_lifecycle_payload(_with(principal=principal), "installed")
    assert payload.principal_username is None and payload.principal_display_name is None


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xff\xfe", b"[]", b"42", b'"installed"', b"null"])
def test_malformed_bodies_are_rejected(body):
    _rejected(body)


def test_event_type_must_match_the_route():
    assert "eventType" in _rejected(_body(INSTALLED), "uninstalled")
    assert "eventType" in _rejected(_with(eventType="enabled"))


def test_unknown_expected_event_is_rejected():
    _rejected(_body(INSTALLED), "enabled")


def test_product_type_must_be_bitbucket():
    assert "productType" in _rejected(_with(productType="jira"))
    assert "productType" in _rejected(_with(productType=...))


def test_installed_requires_a_shared_secret():
    assert "sharedSecret" in _rejected(_with(sharedSecret=...))
    assert "sharedSecret" in _rejected(_with(sharedSecret=""))
    assert "sharedSecret" in _rejected(_with(sharedSecret=123))


@pytest.mark.parametrize("field", ["key", "clientKey", "baseUrl", "baseApiUrl", "eventType"])
@pytest.mark.parametrize("value", [..., None, 7, "", ["x"]])
def test_required_string_fields(field, value):
    assert field in _rejected(_with(**{field: value}))


@pytest.mark.parametrize("url", ["/relative", "bitbucket.org", "ftp://bitbucket.org", "javascript:alert(1)",
                                 "https://user:pw@bitbucket.org", "https://bitbucket.org?x=1",
                                 "https://bitbucket.org#frag", "https://", "https://bitbucket.org:99999"])
def test_base_urls_must_be_absolute_http_urls(url):
    assert "baseUrl" in _rejected(_with(baseUrl=url))
    assert "baseApiUrl" in _rejected(_with(baseApiUrl=url))


@pytest.mark.parametrize("principal", [..., None, "team", [], {}, {"uuid": None}, {"uuid": 5},
                                       {"uuid": "acf54878-51be-473e-bf0b-0fbb12e011ad"},
                                       {"uuid": "{not-a-uuid}"}, {"uuid": WS_UUID, "username": 5},
                                       {"uuid": WS_UUID, "display_name": {}}])
def test_principal_must_carry_a_braced_uuid(principal):
    assert "principal" in _rejected(_with(principal=principal))


def test_client_key_of_another_workspace_is_rejected():
    other = "ari:cloud:bitbucket::app/{00000000-0000-4000-8000-000000000000}/toolchain-dev"
    assert "clientKey" in _rejected(_with(clientKey=other))


# --- uuids and client keys -------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "acf54878-51be-473e-bf0b-0fbb12e011ad",
    "{acf54878-51be-473e-bf0b-0fbb12e011ad}",
    "{ACF54878-51BE-473E-BF0B-0FBB12E011AD}",
    "ACF54878-51be-473e-BF0B-0fbb12e011ad",
])
def test_normalize_uuid(value):
    assert normalize_uuid(value) == WS_UUID


@pytest.mark.parametrize("value", ["", "{}", "{acf54878-51be-473e-bf0b-0fbb12e011ad",
                                   "acf54878-51be-473e-bf0b-0fbb12e011ad}", "acf5487851be473ebf0b0fbb12e011ad",
                                   "urn:uuid:acf54878-51be-473e-bf0b-0fbb12e011ad",
                                   "{acf54878-51be-473e-bf0b-0fbb12e011ag}", " {acf54878-51be-473e-bf0b-0fbb12e011ad}",
                                   None, 12])
def test_normalize_uuid_rejects_non_uuids(value):
    with pytest.raises(InvalidInput):
        normalize_uuid(value)


@pytest.mark.parametrize(("client_key", "expected"), [
    (f"ari:cloud:bitbucket::app/{WS_UUID}/toolchain-dev", WS_UUID),
    ("ari:cloud:bitbucket::app/{ACF54878-51BE-473E-BF0B-0FBB12E011AD}/my-app", WS_UUID),
    ("connection:123", None),
    ("ari:cloud:bitbucket::app/{not-a-uuid}/x", None),
    ("ari:cloud:bitbucket::app/{acf54878-51be-473e-bf0b-0fbb12e011ad}/", None),
    ("ari:cloud:jira::app/{acf54878-51be-473e-bf0b-0fbb12e011ad}/x", None),
    ("", None),
])
def test_workspace_uuid_from_client_key(client_key, expected):
    assert workspace_uuid_from_client_key(client_key) == expected


# --- Connect webhooks ------------------------------------------------------------------------

def test_parses_a_wrapped_connect_webhook():
    data = {"push": {"changes": []}, "repository": {"uuid": "{15a31549-1cff-45dc-9d0d-310114c5038b}"}}
    hook = parse_connect_webhook(_body({"event": "repo:push", "data": data}))
    assert hook == ConnectWebhook(event="repo:push", data=data)


@pytest.mark.parametrize("body", [
    b"nope", b"[]", _body({"data": {}}), _body({"event": "", "data": {}}), _body({"event": 1, "data": {}}),
    _body({"event": "repo:push"}), _body({"event": "repo:push", "data": []}),
    _body({"event": "repo:push", "data": None}),
])
def test_malformed_connect_webhooks_are_rejected(body):
    with pytest.raises(InvalidInput):
        parse_connect_webhook(body)
