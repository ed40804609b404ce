"""Repository events from payloads shaped like Bitbucket's (reference §5.4, §5.5)."""
from __future__ import annotations

import copy

import pytest

from strongroom.errors import InvalidInput
from strongroom.host.events import (SUPPORTED_EVENTS, RefChange, RepoRef, parse_repo_ref,
                                    parse_repository_event)

REPO_UUID = "{15a31549-1cff-45dc-9d0d-310114c5038b}"
WS_UUID = "{4c16a397-8e48-479c-8ca2-442e46c90570}"
OLD = "a13a36d2" + "0" * 32
NEW = "ed0e0bfd" + "1" * 32
TAG = "c0ffee00" + "2" * 32

REPOSITORY = {
    "type": "repository", "full_name": "acme/widget", "name": "Widget", "uuid": REPO_UUID, "scm": "git",
    "is_private": True, "website": None,
    "owner": {"type": "team", "username": "acme", "display_name": "Acme", "uuid": WS_UUID},
    "workspace": {"type": "workspace", "slug": "acme", "uuid": WS_UUID, "name": "Acme", "links": {}},
    "project": {"type": "project", "key": "PJ", "uuid": "{1860e69a-65c1-4ac2-8ab0-cbd2868e7573}", "name": "P"},
    "links": {"html": {"href": "https://bitbucket.org/acme/widget"}},
}
ACTOR = {"type": "user", "display_name": "Dev", "uuid": "{cc8e193d-7603-4dfd-8771-fcc8960aa0fb}",
         "account_id": "5ffed3379edf280075d75b20", "nickname": "dev"}


def _branch(name: str, commit: str, kind: str = "branch") -> dict:
    return {
        "type": kind, "name": name,
        "target": {"type": "commit", "hash": commit, "date": "2023-05-11T09:25:03+00:00",
                   "author": {"type": "author", "raw": "Dev <dev@example.com>"}, "message": "m\n",
                   "parents": [{"type": "commit", "hash": OLD}], "links": {}},
        "links": {"self": {"href": f"https://api.bitbucket.org/2.0/repositories/acme/widget/refs/branches/{name}"}},
        "merge_strategies": ["merge_commit", "squash", "fast_forward"], "default_merge_strategy": "merge_commit",
    }


def _change(old, new, **flags) -> dict:
    change = {"old": old, "new": new, "created": False, "closed": False, "forced": False, "truncated": False,
              "links": {"commits": {"href": "https://api.bitbucket.org/2.0/repositories/acme/widget/commits"}},
              "commits": [{"type": "commit", "hash": NEW}]}
    change.update(flags)
    return change


def _push(*changes) -> dict:
    return {"push": {"changes": list(changes)}, "actor": ACTOR, "repository": copy.deepcopy(REPOSITORY)}


EXPECTED_REPO = RepoRef(uuid=REPO_UUID, slug="widget", name="Widget", full_name="acme/widget",
                        workspace_uuid=WS_UUID, workspace_slug="acme")


def test_supported_events():
    assert SUPPORTED_EVENTS == ("repo:push", "repo:created", "repo:imported", "repo:updated", "repo:transfer",
                                "repo:deleted", "repo:fork")


def test_push_updating_a_branch():
    event = parse_repository_event("repo:push", _push(_change(_branch("main", OLD), _branch("main", NEW))))
    assert event.key == "repo:push"
    assert event.repository == EXPECTED_REPO
    assert event.changes == (RefChange(ref="refs/heads/main", old=OLD, new=NEW, forced=False, created=False,
                                       closed=False),)
    assert event.previous_full_name is None


def test_push_creating_a_branch_has_no_old():
    event = parse_repository_event("repo:push", _push(_change(None, _branch("feature/x", NEW), created=True)))
    assert event.changes == (RefChange("refs/heads/feature/x", None, NEW, False, True, False),)


def test_push_deleting_a_branch_has_no_new():
    change = _change(_branch("gone", OLD), None, closed=True)
    del change["commits"]
    event = parse_repository_event("repo:push", _push(change))
    assert event.changes == (RefChange("refs/heads/gone", OLD, None, False, False, True),)


def test_created_and_closed_follow_null_sides_even_without_flags():
    event = parse_repository_event("repo:push", _push({"old": None, "new": _branch("n", NEW)},
                                                      {"old": _branch("d", OLD), "new": None}))
    assert [(c.created, c.closed) for c in event.changes] == [(True, False), (False, True)]


def test_push_of_tags_and_a_forced_update_in_one_push():
    tag = {"type": "tag", "name": "v1.0", "target": {"type": "commit", "hash": TAG}, "message": None,
           "tagger": None, "date": None, "links": {}}
    event = parse_repository_event("repo:push", _push(
        _change(None, tag, created=True),
        _change(_branch("main", OLD), _branch("main", NEW), forced=True),
        _change(None, dict(tag, type="annotated_tag", name="v2"), created=True),
        _change(None, _branch("legacy", NEW, kind="named_branch"), created=True),
    ))
    assert [c.ref for c in event.changes] == ["refs/tags/v1.0", "refs/heads/main", "refs/tags/v2",
                                              "refs/heads/legacy"]
    assert event.changes[1].forced is True
    assert event.changes[0].new == TAG


def test_push_skips_ref_kinds_git_does_not_track():
    event = parse_repository_event("repo:push", _push(_change(None, _branch("bm", NEW, kind="bookmark"))))
    assert event.changes == ()


def test_hashes_are_lower_cased():
    event = parse_repository_event("repo:push", _push(_change(None, _branch("main", NEW.upper()))))
    assert event.changes[0].new == NEW


@pytest.mark.parametrize("data", [
    {"push": {}},
    {"push": None},
    {"push": {"changes": None}},
    {"push": {"changes": ["x"]}},
    {"push": {"changes": [{"old": None, "new": None}]}},
    {"push": {"changes": [{"old": None, "new": "main"}]}},
    {"push": {"changes": [{"old": None, "new": {"type": "branch", "target": {"hash": NEW}}}]}},
    {"push": {"changes": [{"old": None, "new": {"type": "branch", "name": "m", "target": {"hash": "abc"}}}]}},
    {"push": {"changes": [{"old": None, "new": {"type": "branch", "name": "m"}}]}},
    {"push": {"changes": [{"old": None, "new": {"name": "m", "target": {"hash": NEW}}}]}},
    {"push": {"changes": [{"old": None, "new": {"type": "branch", "name": "m", "target": {"hash": NEW}},
                           "forced": "yes"}]}},
])
def test_malformed_push_payloads_are_rejected(data):
    with pytest.raises(InvalidInput):
        parse_repository_event("repo:push", {**data, "repository": REPOSITORY})


@pytest.mark.parametrize("name", ["../escape", "a..b", "-rf", "with space", "x~1", "x^", "a:b", "q?", "s*",
                                  "[x", "back\\slash", "a@{b", "a//b", "trailing/", "end.", ".hidden",
                                  "x.lock", "a/.b", "ctl\x01", "x.lock/y"])
def test_ref_names_git_would_refuse_are_rejected(name):
    with pytest.raises(InvalidInput):
        parse_repository_event("repo:push", _push(_change(None, _branch(name, NEW))))


@pytest.mark.parametrize("name", ["main", "feature/JIRA-1_x.y", "release-1.0", "ünïcode", "v1.0+build"])
def test_ordinary_ref_names_are_accepted(name):
    event = parse_repository_event("repo:push", _push(_change(None, _branch(name, NEW))))
    assert event.changes[0].ref == f"refs/heads/{name}"


@pytest.mark.parametrize("key", ["repo:created", "repo:imported", "repo:deleted"])
def test_simple_repository_events(key):
    event = parse_repository_event(key, {"actor": ACTOR, "repository": copy.deepcopy(REPOSITORY)})
    assert event.key == key
    assert event.repository == EXPECTED_REPO
    assert event.changes == () and event.previous_full_name is None


def test_repo_updated_reports_the_previous_full_name():
    data = {"actor": ACTOR, "repository": REPOSITORY,
            "changes": {"name": {"new": "Widget", "old": "Gadget"}, "full_name": {"new": "acme/widget",
                                                                                  "old": "acme/gadget"}}}
    event = parse_repository_event("repo:updated", data)
    assert event.previous_full_name == "acme/gadget"


def test_repo_updated_builds_the_previous_full_name_from_an_old_slug():
    data = {"repository": REPOSITORY, "changes": {"slug": {"new": "widget", "old": "gadget"}}}
    assert parse_repository_event("repo:updated", data).previous_full_name == "acme/gadget"


def test_repo_updated_without_a_rename():
    data = {"repository": REPOSITORY, "changes": {"updated_on": {"new": "2024", "old": "2023"},
                                                  "description": {"new": "d", "old": ""}}}
    assert parse_repository_event("repo:updated", data).previous_full_name is None
    assert parse_repository_event("repo:updated", {"repository": REPOSITORY}).previous_full_name is None


@pytest.mark.parametrize("key", ["previous_workspace", "previous_owner"])
def test_repo_transfer_reports_where_the_repository_came_from(key):
    previous = {"type": "workspace", "slug": "old-ws", "uuid": "{00000000-0000-4000-8000-000000000001}"}
    if key == "previous_owner":
        previous = {"type": "team", "username": "old-ws", "uuid": previous["uuid"]}
    event = parse_repository_event("repo:transfer", {"actor": ACTOR, "repository": REPOSITORY, key: previous})
    assert event.repository == EXPECTED_REPO
    assert event.previous_full_name == "old-ws/widget"


def test_repo_transfer_without_a_previous_owner():
    assert parse_repository_event("repo:transfer", {"repository": REPOSITORY}).previous_full_name is None


def test_repo_fork_is_about_the_new_fork():
    fork = {"type": "repository", "full_name": "someone/widget-fork", "name": "widget-fork",
            "uuid": "{9a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d}",
            "workspace": {"slug": "someone", "uuid": "{11111111-2222-4333-8444-555555555555}"}}
    event = parse_repository_event("repo:fork", {"actor": ACTOR, "repository": REPOSITORY, "fork": fork})
    assert event.repository == RepoRef(uuid=fork["uuid"], slug="widget-fork", name="widget-fork",
                                       full_name="someone/widget-fork",
                                       workspace_uuid="{11111111-2222-4333-8444-555555555555}",
                                       workspace_slug="someone")


def test_repo_fork_without_the_fork_is_rejected():
    with pytest.raises(InvalidInput, match="fork.uuid"):
        parse_repository_event("repo:fork", {"repository": REPOSITORY})


def test_other_events_still_name_their_repository():
    event = parse_repository_event("pullrequest:created", {"repository": REPOSITORY, "pullrequest": {"id": 1}})
    assert event.key == "pullrequest:created" and event.repository == EXPECTED_REPO


@pytest.mark.parametrize("data", [{}, {"repository": None}, {"repository": {}}, {"repository": {"uuid": 5}},
                                  {"repository": {"uuid": "not-a-uuid"}}, {"repository": "acme/widget"}])
@pytest.mark.parametrize("key", ["repo:push", "repo:created", "repo:deleted", "repo:updated"])
def test_events_without_a_repository_uuid_are_rejected(key, data):
    with pytest.raises(InvalidInput):
        parse_repository_event(key, data)


@pytest.mark.parametrize(("key", "data"), [("", {"repository": REPOSITORY}), ("repo:push", None),
                                           ("repo:push", []), (None, {"repository": REPOSITORY})])
def test_bad_event_key_or_data(key, data):
    with pytest.raises(InvalidInput):
        parse_repository_event(key, data)


def test_repo_ref_from_owner_and_full_name_only():
    ref = parse_repo_ref({"uuid": REPO_UUID.upper(), "full_name": "acme/widget", "owner": {"uuid": WS_UUID}})
    assert ref == RepoRef(uuid=REPO_UUID, slug="widget", name=None, full_name="acme/widget",
                          workspace_uuid=WS_UUID, workspace_slug="acme")


def test_repo_ref_prefers_explicit_slug_and_workspace():
    ref = parse_repo_ref({"uuid": REPO_UUID, "slug": "widget", "full_name": "Acme/Widget",
                          "workspace": {"slug": "acme", "uuid": WS_UUID}})
    assert (ref.slug, ref.workspace_slug) == ("widget", "acme")


def test_repo_ref_with_only_a_uuid():
    assert parse_repo_ref({"uuid": REPO_UUID}) == RepoRef(REPO_UUID, None, None, None, None, None)


def test_repo_ref_owner_username_is_the_last_resort_for_the_workspace_slug():
    assert parse_repo_ref({"uuid": REPO_UUID, "owner": {"username": "acme"}}).workspace_slug == "acme"


@pytest.mark.parametrize("repo", [
    {"uuid": REPO_UUID, "slug": "../etc"},
    {"uuid": REPO_UUID, "slug": ".."},
    {"uuid": REPO_UUID, "full_name": "acme/a b"},
    {"uuid": REPO_UUID, "workspace": {"slug": "a/b"}},
    {"uuid": REPO_UUID, "workspace": {"uuid": "nope"}},
    {"uuid": REPO_UUID, "name": 3},
])
def test_repo_ref_rejects_unsafe_or_malformed_fields(repo):
    with pytest.raises(InvalidInput):
        parse_repo_ref(repo)
