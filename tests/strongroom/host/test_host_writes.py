"""Writes for restores: a token narrowed to repository:write (JWT grant ``scope``), and slug checks."""
from __future__ import annotations

import pytest

from strongroom.errors import InvalidInput
from strongroom.host.client import ConnectCredentials, HostClient, MemoryTokenCache
from strongroom.host.credentials import READ_SCOPES, AccessTokenCredentials, ScopedCredentials
from strongroom.host.writes import check_slug, creation_body, write_client

CONNECT = ConnectCredentials(app_key="k", client_key="ari:cloud:bitbucket::app/{w}/k", shared_secret="s" * 32,
                             base_url="https://bitbucket.org", base_api_url="https://api.bitbucket.org")


def test_the_write_token_is_asked_for_repository_write_only_and_never_shares_the_read_cache():
    client = write_client(HostClient(CONNECT, token_cache=MemoryTokenCache()))
    creds = client._credentials
    assert isinstance(creds, ScopedCredentials) and creds.inner is CONNECT
    grant = creds.token_grant()
    assert grant.url == "https://bitbucket.org/site/oauth2/access_token"
    assert dict(grant.data) == {"grant_type": "urn:bitbucket:oauth2:jwt", "scope": "repository:write"}
    assert creds.cache_key != CONNECT.cache_key
    assert creds.git_credentials(lambda: "t") == ("x-token-auth", "t")


def test_narrowing_an_everyday_read_client_replaces_its_scope_instead_of_stacking_it():
    everyday = HostClient(ScopedCredentials(CONNECT, READ_SCOPES), token_cache=MemoryTokenCache())
    assert dict(everyday._credentials.token_grant().data)["scope"] == "repository"
    creds = write_client(everyday)._credentials
    assert creds.inner is CONNECT and dict(creds.token_grant().data)["scope"] == "repository:write"
    assert len({CONNECT.cache_key, everyday._credentials.cache_key, creds.cache_key}) == 3


def test_a_credential_that_is_a_token_already_is_used_as_it_is():
    token = AccessTokenCredentials("workspace-token", "https://bitbucket.org", "https://api.bitbucket.org")
    creds = ScopedCredentials(token, ("repository:write",))
    assert creds.token_grant() is None and creds.git_credentials(lambda: "unused") == ("x-token-auth", "workspace-token")


@pytest.mark.parametrize("name", ["", "Has Space", "UPPER", "-dash", "a" * 63, "a/b", None, 3])
def test_repository_names_must_be_slugs(name):
    with pytest.raises(InvalidInput):
        check_slug(name)
    assert check_slug("api.v2_backup-1") == "api.v2_backup-1"


def test_the_creation_body_carries_the_settings_and_is_private_unless_public_in_so_many_words():
    settings = {"is_private": False, "description": "The platform API", "language": "python",
                "fork_policy": "no_forks", "project": {"key": "PLAT", "name": "Platform", "confirmed": True},
                "mainbranch": "develop"}
    assert creation_body(settings) == {"scm": "git", "is_private": False, "description": "The platform API",
                                       "language": "python", "fork_policy": "no_forks", "project": {"key": "PLAT"}}
    # nothing known: private, in the workspace's default project; mainbranch is never sent (BCLOUD-20340)
    assert creation_body({}) == {"scm": "git", "is_private": True}
    assert creation_body({"is_private": None, "fork_policy": "sometimes", "description": "", "project": None}) == \
        {"scm": "git", "is_private": True}
    with pytest.raises(InvalidInput):
        creation_body({"project": {"key": 'x" OR 1'}})
