"""Forge Invocation Token verification against keys minted by the sandbox's independent Forge platform code."""
from __future__ import annotations

import time
import uuid

import pytest

from sandbox.forge_tokens import ForgeKeys, fit_claims, sign_fit
from strongroom.errors import AuthError
from strongroom.forge import JwksCache, normalize_app_id, verify_invocation_token

APP_ID = f"ari:cloud:ecosystem::app/{uuid.uuid4()}"
WS = "{%s}" % uuid.uuid4()
INSTALLATION = f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"


class CountingJwks:
    """Serves the platform's current key set and counts fetches."""

    def __init__(self, keys: ForgeKeys) -> None:
        self.keys, self.fetches = keys, 0

    def __call__(self, url: str) -> dict:
        self.fetches += 1
        return self.keys.jwks()


@pytest.fixture
def keys():
    return ForgeKeys()


@pytest.fixture
def jwks(keys):
    fetch = CountingJwks(keys)
    return JwksCache("https://forge.example/.well-known/jwks.json", fetch=fetch), fetch


def claims(**over) -> dict:
    base = fit_claims(app_id=APP_ID, installation_id=INSTALLATION, api_base_url="https://api.bitbucket.org",
                      workspace_uuid=WS, module_key="sr-events", environment_id="env")
    base.update(over)
    return base


def verify(token: str, cache: JwksCache, app_id: str = APP_ID):
    return verify_invocation_token(f"Bearer {token}", app_id=app_id, keys=cache)


def test_a_valid_token_names_installation_workspace_and_api(keys, jwks):
    cache, fetch = jwks
    inv = verify(sign_fit(keys, claims()), cache)
    assert (inv.installation_id, inv.workspace_uuid, inv.api_base_url) == (INSTALLATION, WS, "https://api.bitbucket.org")
    assert inv.module_key == "sr-events" and inv.principal is None
    verify(sign_fit(keys, claims()), cache)
    assert fetch.fetches == 1  # cached


def test_ui_tokens_carry_the_principal_and_a_braced_workspace(keys, jwks):
    token = sign_fit(keys, fit_claims(app_id=APP_ID, installation_id=INSTALLATION, api_base_url="https://api.bitbucket.org",
                                      workspace_uuid=WS, module_key="sr-ui", environment_id="e", ui=True,
                                      principal="557058:abc"))
    inv = verify(token, jwks[0])
    assert inv.principal == "557058:abc" and inv.workspace_uuid == WS


@pytest.mark.parametrize("case", ["unknown key", "HS256", "none", "audience", "issuer", "expired", "not yet valid",
                                  "no workspace", "two workspaces", "no installation", "garbage"])
def test_invalid_tokens_are_refused(keys, jwks, case):
    now = int(time.time())
    token = {
        "unknown key": lambda: sign_fit(keys, claims(), foreign_key=True),
        "HS256": lambda: sign_fit(keys, claims(), alg="HS256"),
        "none": lambda: sign_fit(keys, claims(), alg="none"),
        "audience": lambda: sign_fit(keys, claims(aud=f"ari:cloud:ecosystem::app/{uuid.uuid4()}")),
        "issuer": lambda: sign_fit(keys, claims(iss="forge/other")),
        "expired": lambda: sign_fit(keys, claims(iat=now - 600, nbf=now - 600, exp=now - 120)),
        "not yet valid": lambda: sign_fit(keys, claims(nbf=now + 600, exp=now + 900)),
        "no workspace": lambda: sign_fit(keys, claims(app={"id": APP_ID, "installationId": INSTALLATION})),
        "two workspaces": lambda: sign_fit(keys, claims(context={"workspaceId": "{%s}" % uuid.uuid4()})),
        "no installation": lambda: sign_fit(keys, claims(app={"id": APP_ID})),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    with pytest.raises(AuthError):
        verify(token, jwks[0])


def test_missing_or_other_scheme_is_refused(keys, jwks):
    for header in (None, "", "Bearer ", f"JWT {sign_fit(keys, claims())}", f"Basic {sign_fit(keys, claims())}"):
        with pytest.raises(AuthError):
            verify_invocation_token(header, app_id=APP_ID, keys=jwks[0])


def test_an_unknown_kid_refetches_once_so_rotation_works(keys, jwks):
    cache, fetch = jwks
    verify(sign_fit(keys, claims()), cache)
    keys.rotate()
    verify(sign_fit(keys, claims()), cache)
    assert fetch.fetches == 2
    with pytest.raises(AuthError):
        verify(sign_fit(keys, claims(), foreign_key=True), cache)
    assert fetch.fetches == 3


def test_unknown_kids_cannot_make_us_fetch_without_limit(keys, jwks):
    cache, fetch = jwks
    for _ in range(20):
        with pytest.raises(AuthError):
            verify(sign_fit(keys, claims(), foreign_key=True), cache)
    assert fetch.fetches <= 6


def test_a_bare_app_id_is_the_ari_audience(keys, jwks):
    bare = APP_ID.rpartition("/")[2]
    assert normalize_app_id(bare) == APP_ID
    assert verify(sign_fit(keys, claims()), jwks[0], app_id=bare).workspace_uuid == WS
