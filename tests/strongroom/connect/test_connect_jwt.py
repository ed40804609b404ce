"""Connect JWT extraction, verification and signing; every bad token is refused with its own code."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt as pyjwt
import pytest
from atlassian_jwt.url_utils import hash_url

from strongroom.connect.jwt import (extract_token, read_unverified_claims, sign_request_token,
                                    verify_request_token)
from strongroom.errors import AuthError, InvalidInput

SECRET = "0f3c2b1a-test-shared-secret-of-decent-length"
CLIENT_KEY = "ari:cloud:bitbucket::app/{acf54878-51be-473e-bf0b-0fbb12e011ad}/strongroom"
NOW = 1_700_000_000
PATH = "/webhooks"
QUERY = "a=1&b=two+words"
QSH = hash_url("POST", PATH + "?" + QUERY)  # computed by atlassian-jwt, not by our code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _hand_made(header: dict, claims: dict, secret: str | None = SECRET) -> str:
    """A token built byte by byte, signed with HMAC-SHA256 (or unsigned when secret is None)."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _claims(**overrides) -> dict:
    claims = {"iss": CLIENT_KEY, "aud": CLIENT_KEY, "iat": NOW - 5, "exp": NOW + 3595, "qsh": QSH}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _token(secret: str = SECRET, algorithm: str = "HS256", **overrides) -> str:
    return pyjwt.encode(_claims(**overrides), secret, algorithm=algorithm)


def _verify(token: str, secret: str = SECRET, **kwargs) -> dict:
    kwargs.setdefault("method", "POST")
    kwargs.setdefault("path", PATH)
    kwargs.setdefault("query", QUERY)
    kwargs.setdefault("now", NOW)
    return verify_request_token(token, secret, **kwargs)


def _code(call) -> str:
    with pytest.raises(AuthError) as info:
        call()
    return info.value.code


# --- extract_token ---------------------------------------------------------------------------

def test_extract_token_from_authorization_header():
    assert extract_token("JWT abc.def.ghi", {}) == "abc.def.ghi"


def test_extract_token_scheme_is_case_insensitive_when_receiving():
    assert extract_token("jwt abc.def.ghi", {}) == "abc.def.ghi"
    assert extract_token("  Jwt   abc.def.ghi ", {}) == "abc.def.ghi"


def test_extract_token_from_query_parameter():
    assert extract_token(None, {"jwt": "q.r.s"}) == "q.r.s"


def test_extract_token_prefers_the_header():
    assert extract_token("JWT h.h.h", {"jwt": "q.q.q"}) == "h.h.h"


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic dXNlcjpwYXNz", "JWT", "JWT   "])
def test_extract_token_without_a_jwt(header):
    assert extract_token(header, {}) is None
    assert extract_token(header, {"jwt": ""}) is None


# --- read_unverified_claims ------------------------------------------------------------------

def test_read_unverified_claims_returns_claims_without_the_secret():
    assert read_unverified_claims(_token(secret="some-other-secret-that-is-long-enough!"))["iss"] == CLIENT_KEY


@pytest.mark.parametrize("token", [
    _hand_made({"alg": "none", "typ": "JWT"}, _claims(), secret=None),
    _hand_made({"alg": "RS256", "typ": "JWT"}, _claims()),
    _hand_made({"alg": "ES256", "typ": "JWT"}, _claims()),
    _hand_made({"typ": "JWT"}, _claims()),
    _hand_made({"alg": "hs256", "typ": "JWT"}, _claims()),
    "not-a-token",
    "a.b.c",
    "",
    "...",
    "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
], ids=["none", "RS256", "ES256", "missing-alg", "lowercase-alg", "garbage", "abc", "empty", "dots",
        "payload-not-json"])
def test_read_unverified_claims_rejects_bad_tokens(token):
    assert _code(lambda: read_unverified_claims(token)) == "invalid_token"


@pytest.mark.parametrize("iss", [None, "", 42])
def test_read_unverified_claims_requires_an_issuer(iss):
    claims = _claims()
    claims.pop("iss")
    if iss is not None:
        claims["iss"] = iss
    assert _code(lambda: read_unverified_claims(_hand_made({"alg": "HS256"}, claims))) == "invalid_token"


# --- verify_request_token: the happy path ----------------------------------------------------

def test_verify_accepts_a_valid_token():
    assert _verify(_token(), audience=CLIENT_KEY)["iss"] == CLIENT_KEY


def test_verify_excludes_the_jwt_query_parameter_from_the_qsh():
    token = _token()
    assert _verify(token, query=QUERY + "&jwt=" + token)["qsh"] == QSH


def test_verify_strips_the_app_base_path():
    assert _verify(_token(), path="/base" + PATH, base_path="/base")["qsh"] == QSH


def test_verify_accepts_times_within_the_leeway():
    assert _verify(_token(exp=NOW - 10, iat=NOW + 10), leeway=30)


def test_verify_without_audience_ignores_the_aud_claim():
    assert _verify(_token(aud="somebody-else"))["aud"] == "somebody-else"


def test_verify_accepts_a_token_without_aud_even_with_an_audience():
    assert _verify(_token(aud=None), audience=CLIENT_KEY)["iss"] == CLIENT_KEY


def test_verify_accepts_an_audience_list():
    assert _verify(_token(aud=["x", CLIENT_KEY]), audience=CLIENT_KEY)


def test_verify_without_required_qsh_accepts_a_token_without_qsh():
    assert "qsh" not in _verify(_token(qsh=None), require_qsh=False)


@pytest.mark.parametrize(("number", "request_uri", "qsh"), [
    (1, "/test?param=value", "be16910858a41fd19ea5c1b4e9decca9a784d1024cb00b2158defe2f29dc86dd"),
    (4, "/test?director=%E5%AE%AE%E5%B4%8E+%E9%A7%BF",
     "44d6354ffe8f963972a7fc59e98b2c3dfe4b493295c5b89edd974a339e61ac89"),
    (24, "/test?c=&c=+&c=%2520&c=%2B", "cbbcac9a6a02f3ad96c5ab5bf876dd9f79b2c61ceec5660a1c9d73a3b102ec2c"),
    (39, "/path!$&'()*+,;=?a=b", "9ef803f9cb8dea4f7f875caff8d31e95962c6e8bd44d64a848d6ebb055b2144b"),
])
def test_official_signed_url_vectors_verify(number, request_uri, qsh):
    # §3.5 gives the claims and secret of the signed URLs but not the tokens: rebuild them with PyJWT
    # (key order as in the vector file) and verify the whole signed URL, jwt parameter included.
    secret = "7512836e-9137-48ac-baaf-a1935b96e17a"
    claims = {"qsh": qsh, "context": {}, "iss": "jira:1234-5678-9000", "exp": 1466731255, "iat": 1466731075}
    token = pyjwt.encode(claims, secret, algorithm="HS256")
    path, _, query = request_uri.partition("?")
    verified = verify_request_token(token, secret, method="GET", path=path, query=f"{query}&jwt={token}",
                                    now=1466731100)
    assert verified == claims


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the vector's secret is short
def test_deterministic_bitbucket_shaped_token():
    # §3.6(c): secret shared-secret-123, GET /2.0/repositories/acme.
    token = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJteS1iYWNrdXAtYXBwIiwic3ViIjoiYXJpOmNsb3VkOmJp"
             "dGJ1Y2tldDo6YXBwL3thY2Y1NDg3OC01MWJlLTQ3M2UtYmYwYi0wZmJiMTJlMDExYWR9L215LWJhY2t1cC1hcHAiLCJp"
             "YXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDE4MCwicXNoIjoiOTViMjY0YmVkNTMwZjBlMTRiN2E3NTMyMGFiZGQ2"
             "YzRlZjk3MzM5NDFjMDk5NjVjZDc2MWNiZDU0ODY1ZjZkOCJ9.YwyIQrNL24ppH-_c-zYBjr06ceuWErr0lUWhC-r99wM")
    subject = "ari:cloud:bitbucket::app/{acf54878-51be-473e-bf0b-0fbb12e011ad}/my-backup-app"
    expected = {"iss": "my-backup-app", "sub": subject, "iat": 1700000000, "exp": 1700000180,
                "qsh": "95b264bed530f0e14b7a75320abdd6c4ef9733941c09965cd761cbd54865f6d8"}
    assert verify_request_token(token, "shared-secret-123", method="GET", path="/2.0/repositories/acme",
                                now=1700000060) == expected
    ours = sign_request_token("shared-secret-123", issuer="my-backup-app", subject=subject, method="GET",
                              path="/2.0/repositories/acme", now=1700000000)
    assert pyjwt.decode(ours, "shared-secret-123", algorithms=["HS256"], options={"verify_exp": False}) == expected


# --- verify_request_token: every bad input has its code --------------------------------------

def test_alg_none_is_rejected():
    token = _hand_made({"alg": "none", "typ": "JWT"}, _claims(), secret=None)
    assert _code(lambda: _verify(token)) == "invalid_token"


def test_rs256_header_is_rejected_even_with_a_valid_hmac_signature():
    # Algorithm confusion: an RS256-labelled token HMAC-signed with the shared secret.
    token = _hand_made({"alg": "RS256", "typ": "JWT"}, _claims())
    assert _code(lambda: _verify(token)) == "invalid_token"


def test_hs512_is_rejected():
    token = _token(secret=SECRET * 2, algorithm="HS512")
    assert _code(lambda: _verify(token, secret=SECRET * 2)) == "invalid_token"


def test_missing_alg_is_rejected():
    assert _code(lambda: _verify(_hand_made({"typ": "JWT"}, _claims()))) == "invalid_token"


@pytest.mark.parametrize("token", ["garbage", "", "a.b", "a.b.c", "x.y.z.w", "....", "e30.e30.",
                                   "eyJhbGciOiJIUzI1NiJ9..", "\u00e9.\u00e9.\u00e9"])
def test_garbage_is_rejected(token):
    assert _code(lambda: _verify(token)) == "invalid_token"


def test_payload_that_is_not_json_is_invalid_token():
    token = _b64(b'{"alg":"HS256"}') + "." + _b64(b"not json")
    signature = hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).digest()
    assert _code(lambda: _verify(token + "." + _b64(signature))) == "invalid_token"


def test_wrong_secret_is_rejected():
    assert _code(lambda: _verify(_token(), secret="another-secret-of-the-same-sort-of-length")) == (
        "invalid_signature")


def test_empty_secret_is_rejected():
    assert _code(lambda: _verify(_token(), secret="")) == "invalid_signature"


def test_tampered_signature_is_rejected():
    head, payload, _ = _token().split(".")
    forged_payload = _b64(json.dumps(_claims(iss="someone-else")).encode())
    assert _code(lambda: _verify(f"{head}.{forged_payload}.{_token().split('.')[2]}")) == "invalid_signature"


def test_expired_token_is_rejected():
    assert _code(lambda: _verify(_token(exp=NOW - 31), leeway=30)) == "token_expired"


def test_iat_in_the_future_is_rejected():
    assert _code(lambda: _verify(_token(iat=NOW + 31), leeway=30)) == "token_not_yet_valid"


def test_nbf_in_the_future_is_rejected():
    assert _code(lambda: _verify(_token(nbf=NOW + 600))) == "token_not_yet_valid"


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_missing_time_claims_are_rejected(claim):
    assert _code(lambda: _verify(_token(**{claim: None}))) == "invalid_token"


@pytest.mark.parametrize("value", ["1700000000", True, None])
def test_non_numeric_exp_is_rejected(value):
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, {**_claims(), "exp": value})
    assert _code(lambda: _verify(token)) == "invalid_token"


def test_missing_issuer_is_rejected():
    assert _code(lambda: _verify(_token(iss=None))) == "invalid_token"


def test_missing_qsh_is_rejected():
    assert _code(lambda: _verify(_token(qsh=None))) == "missing_qsh"


def test_tampered_query_is_rejected():
    assert _code(lambda: _verify(_token(), query="a=1&b=other")) == "qsh_mismatch"


def test_added_query_parameter_is_rejected():
    assert _code(lambda: _verify(_token(), query=QUERY + "&admin=true")) == "qsh_mismatch"


def test_tampered_path_is_rejected():
    assert _code(lambda: _verify(_token(), path="/webhooks/other")) == "qsh_mismatch"


def test_wrong_method_is_rejected():
    assert _code(lambda: _verify(_token(), method="GET")) == "qsh_mismatch"


def test_present_qsh_is_checked_even_when_not_required():
    assert _code(lambda: _verify(_token(), path="/elsewhere", require_qsh=False)) == "qsh_mismatch"


def test_non_string_qsh_is_a_mismatch():
    assert _code(lambda: _verify(_token(qsh=12345))) == "qsh_mismatch"


def test_wrong_audience_is_rejected():
    assert _code(lambda: _verify(_token(aud="ari:cloud:bitbucket::app/{other}/x"), audience=CLIENT_KEY)) == (
        "invalid_audience")


def test_audience_list_without_us_is_rejected():
    assert _code(lambda: _verify(_token(aud=["a", "b"]), audience=CLIENT_KEY)) == "invalid_audience"


# --- sign_request_token ----------------------------------------------------------------------

def test_sign_request_token_claims():
    token = sign_request_token(SECRET, issuer="strongroom", subject=CLIENT_KEY, method="GET",
                               path="/2.0/repositories/ws", query="pagelen=100", lifetime=180, now=NOW)
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert header["alg"] == "HS256"
    assert claims == {"iss": "strongroom", "sub": CLIENT_KEY, "iat": NOW, "exp": NOW + 180,
                      "qsh": hash_url("GET", "/2.0/repositories/ws?pagelen=100")}


def test_sign_request_token_audience_and_extra_claims():
    token = sign_request_token(SECRET, issuer="i", audience="aud", method="GET", path="/", now=NOW,
                               extra_claims={"context": {}})
    claims = pyjwt.decode(token, SECRET, algorithms=["HS256"], audience="aud", options={"verify_exp": False})
    assert claims["aud"] == "aud" and claims["context"] == {} and "sub" not in claims


def test_signed_token_round_trips_through_verify():
    token = sign_request_token(SECRET, issuer=CLIENT_KEY, method="POST", path="/base" + PATH, query=QUERY,
                               base_path="/base", now=NOW)
    assert _verify(token)["qsh"] == QSH


@pytest.mark.parametrize("claim", ["iss", "qsh", "exp"])
def test_extra_claims_cannot_override_core_claims(claim):
    with pytest.raises(InvalidInput):
        sign_request_token(SECRET, issuer="i", method="GET", path="/", extra_claims={claim: "x"})


def test_signing_needs_a_secret_and_an_issuer():
    with pytest.raises(InvalidInput):
        sign_request_token("", issuer="i", method="GET", path="/")
    with pytest.raises(InvalidInput):
        sign_request_token(SECRET, issuer="", method="GET", path="/")
