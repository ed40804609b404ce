"""Repository settings: read from REST objects and events, merged into the row, shown in the manifest."""
from __future__ import annotations

import json

from strongroom.repositories import (info_from_rest, manifest_for, record_settings, settings_from_event,
                                     settings_from_rest, stored_settings)
from strongroom.store.models import Repository, Tenant

FULL = {"uuid": "{00000000-0000-4000-8000-000000000001}", "full_name": "acme/api", "slug": "api", "name": "API",
        "description": "The platform API", "is_private": False, "language": "python", "fork_policy": "no_forks",
        "has_issues": False, "has_wiki": False, "website": None,
        "project": {"type": "project", "key": "PLAT", "uuid": "{p}", "name": "Platform", "links": {}},
        "mainbranch": {"type": "branch", "name": "develop"}, "links": {"clone": []}}
SETTINGS = {"description": "The platform API", "is_private": False, "language": "python", "fork_policy": "no_forks",
            "project": {"key": "PLAT", "name": "Platform"}, "mainbranch": "develop"}


def test_a_full_rest_object_gives_every_restorable_setting_and_nothing_else():
    assert settings_from_rest(FULL) == SETTINGS
    assert info_from_rest(FULL).settings == SETTINGS
    empty = settings_from_rest({**FULL, "mainbranch": None})
    assert empty["mainbranch"] is None  # an empty repository has no main branch, and says so


def test_fields_an_object_does_not_carry_or_carries_badly_are_left_out():
    webhook_form = {"uuid": "{u}", "full_name": "acme/api", "is_private": True, "website": None,
                    "project": {"type": "project", "key": "PLAT", "name": "Platform"}}
    assert settings_from_rest(webhook_form) == {"is_private": True, "project": {"key": "PLAT", "name": "Platform"}}
    junk = {"description": 5, "is_private": "no", "fork_policy": "sometimes", "project": {"key": ""},
            "language": None, "mainbranch": {"name": 3}}
    assert settings_from_rest(junk) == {"mainbranch": None}


def test_events_reveal_what_their_repository_object_and_changes_carry():
    data = {"repository": {"uuid": "{u}", "is_private": False, "project": {"key": "OPS", "name": "Ops"}},
            "changes": {"description": {"old": "", "new": "now described"}, "language": {"old": "", "new": "go"},
                        "name": {"old": "a", "new": "b"}}}
    assert settings_from_event("repo:updated", data) == {"is_private": False, "project": {"key": "OPS", "name": "Ops"},
                                                         "description": "now described", "language": "go"}
    assert settings_from_event("repo:push", data) == {"is_private": False, "project": {"key": "OPS", "name": "Ops"}}
    assert settings_from_event("repo:fork", {"fork": {"is_private": True}}) == {"is_private": True}


def test_recording_merges_and_writes_only_when_something_changed():
    repo = Repository(uuid="{u}", slug="api")
    assert stored_settings(repo) is None and not record_settings(repo, {})
    assert record_settings(repo, SETTINGS) and stored_settings(repo) == SETTINGS
    first = repo.settings_recorded_at
    assert not record_settings(repo, dict(SETTINGS)) and repo.settings_recorded_at == first
    assert record_settings(repo, {"is_private": True})  # a partial object changes only what it carries
    assert stored_settings(repo) == {**SETTINGS, "is_private": True}
    assert json.loads(repo.settings_json) == {**SETTINGS, "is_private": True}


def test_the_manifest_carries_the_settings_for_a_person_recovering_by_hand():
    tenant = Tenant(id="t1", workspace_uuid="{w}", workspace_slug="acme", workspace_name="Acme")
    repo = Repository(id="r1", uuid="{u}", slug="api", name="API", full_name="acme/api")
    assert manifest_for(tenant, repo)["repository"]["settings"] is None
    record_settings(repo, SETTINGS)
    manifest = manifest_for(tenant, repo)
    assert manifest["format"] == 1 and manifest["repository"]["settings"] == SETTINGS
    assert manifest["repository"]["settings_recorded_at"].endswith("Z")
    json.dumps(manifest)  # plain JSON
