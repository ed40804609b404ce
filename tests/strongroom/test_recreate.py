"""Recreating a repository: which settings a plan applies, the project check, the main branch pushed first,
and what Bitbucket made of it afterwards (pure logic, plus a stub host for the create fallback)."""
from __future__ import annotations

import pytest

from strongroom import recreate
from strongroom.errors import Conflict, CredentialRejected, NotFound
from strongroom.host.client import HostRejected
from strongroom.restore import RefAction, _remaining
from strongroom.vault.push import RefUpdate

A, B, T = "a" * 40, "b" * 40, "c" * 40
REFS = {"refs/heads/alpha": A, "refs/heads/develop": B, "refs/heads/main": A, "refs/tags/v1": T}
RECORDED = {"description": "The platform API", "is_private": False, "language": "python",
            "fork_policy": "no_forks", "project": {"key": "PLAT", "name": "Platform"}, "mainbranch": "develop"}


def test_recorded_settings_are_applied_as_they_were():
    settings, warnings = recreate.settings_to_apply(RECORDED, REFS)
    assert settings == {"is_private": False, "project": {"key": "PLAT", "name": "Platform"},
                        "description": "The platform API", "language": "python", "fork_policy": "no_forks",
                        "mainbranch": "develop"}
    assert warnings == []


@pytest.mark.parametrize("recorded", [None, {}, {"description": "x"}, {"is_private": None}, {"is_private": True}])
def test_privacy_is_private_unless_the_repository_was_public(recorded):
    assert recreate.settings_to_apply(recorded, REFS)[0]["is_private"] is True


def test_without_a_record_the_repository_is_private_in_the_default_project_with_a_warning():
    settings, warnings = recreate.settings_to_apply(None, REFS)
    assert (settings["project"], settings["mainbranch"], settings["description"]) == (None, None, "")
    assert warnings == [recreate.NOT_RECORDED]


def test_a_main_branch_missing_from_the_restored_refs_or_unknown_is_said():
    settings, warnings = recreate.settings_to_apply(RECORDED, {"refs/heads/main": A})
    assert settings["mainbranch"] is None and "develop is not among the restored refs" in warnings[0]
    settings, warnings = recreate.settings_to_apply({**RECORDED, "mainbranch": None}, REFS)
    assert settings["mainbranch"] is None and "not known" in warnings[0]
    assert recreate.settings_to_apply({**RECORDED, "mainbranch": None}, {"refs/tags/v1": T})[1] == []


def test_the_project_is_kept_confirmed_dropped_with_a_warning_or_kept_unconfirmed():
    asked = []

    def projects(answer):
        def check(key):
            asked.append(key)
            return answer
        return check

    settings, warnings = recreate.plan_settings(RECORDED, REFS, projects(True))
    assert settings["project"] == {"key": "PLAT", "name": "Platform", "confirmed": True} and warnings == []
    settings, warnings = recreate.plan_settings(RECORDED, REFS, projects(False))
    assert settings["project"] is None
    assert warnings == ["project PLAT no longer exists; the repository is created in the workspace's default project"]
    settings, warnings = recreate.plan_settings(RECORDED, REFS, projects(None))
    assert settings["project"]["confirmed"] is False and warnings == []
    recreate.plan_settings({**RECORDED, "project": None}, REFS, projects(True))
    assert asked == ["PLAT", "PLAT", "PLAT"]  # no project: nothing asked


class StubHost:
    """Answers request_json from a script: (method, path) -> a value or an exception to raise."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def request_json(self, method, path, *, json_body=None, params=None, gone=NotFound):
        self.calls.append((method, path, json_body, params))
        answer = self.answers[(method, path)]
        answer = answer.pop(0) if isinstance(answer, list) else answer
        if isinstance(answer, Exception):
            raise answer
        return answer

    def clone_url(self, repository):
        return f"https://bitbucket.example/{repository['full_name']}.git"


def test_the_project_check_asks_each_key_once_and_falls_back_to_a_listing_without_the_project_scope():
    host = StubHost({("GET", "workspaces/acme/projects/PLAT"): {"key": "PLAT"},
                     ("GET", "workspaces/acme/projects/GONE"): NotFound("404"),
                     ("GET", "workspaces/acme/projects/OPS"): CredentialRejected("403"),
                     ("GET", "workspaces/acme/projects/EMPTY"): CredentialRejected("403"),
                     ("GET", "repositories/acme"): [{"values": [{"slug": "x"}]}, {"values": []}]})
    check = recreate.ProjectCheck(host, "acme")
    assert [check("PLAT"), check("GONE"), check("OPS"), check("EMPTY"), check("PLAT")] == [True, False, True, None,
                                                                                           True]
    assert len(host.calls) == 6
    assert host.calls[3][3] == {"q": 'project.key="OPS"', "pagelen": 1}
    assert check('x" OR name~"') is False and len(host.calls) == 6  # not a key: never sent anywhere


def test_creation_falls_back_to_the_default_project_when_bitbucket_refuses_the_project():
    created = {"full_name": "acme/api"}
    host = StubHost({("POST", "repositories/acme/api"): [HostRejected("400"), created]})
    wanted = {"is_private": False, "project": {"key": "GONE", "confirmed": False}, "description": "d"}
    assert recreate.create_with_settings(host, "acme", "api", wanted) == created
    first, second = (call[2] for call in host.calls)
    assert first == {"scm": "git", "is_private": False, "description": "d", "project": {"key": "GONE"}}
    assert second == {"scm": "git", "is_private": False, "description": "d"}
    no_project = StubHost({("POST", "repositories/acme/api"): HostRejected("400")})
    with pytest.raises(HostRejected):
        recreate.create_with_settings(no_project, "acme", "api", {"is_private": True})
    assert len(no_project.calls) == 1


def test_a_repository_an_earlier_attempt_created_is_accepted_unless_it_holds_other_refs():
    existing = {"full_name": "acme/api"}
    host = StubHost({("GET", "repositories/acme/api"): existing})
    planned = {"refs/heads/develop": B, "refs/heads/main": A}
    url = recreate.ensure_repository(host, "acme", "api", {}, planned, lambda _: {"refs/heads/develop": B})
    assert url == "https://bitbucket.example/acme/api.git"
    with pytest.raises(Conflict):
        recreate.ensure_repository(host, "acme", "api", {}, planned, lambda _: {"refs/heads/other": A})


def test_the_main_branch_is_pushed_alone_first_then_the_rest_together():
    updates = [RefUpdate("refs/heads/alpha", A), RefUpdate("refs/heads/develop", B), RefUpdate("refs/tags/v1", T)]
    batches = recreate.push_batches(updates, "develop")
    assert batches == [[updates[1]], [updates[0], updates[2]]]
    assert recreate.push_batches(updates, None) == [updates]
    assert recreate.push_batches(updates, "gone") == [updates]
    assert recreate.push_batches([], "develop") == []


def test_a_resumed_restore_skips_the_main_branch_it_already_pushed():
    changes = [RefAction(ref, "create", None, oid, ref) for ref, oid in sorted(REFS.items())]
    after_first_push = {"refs/heads/develop": B}
    batches = recreate.push_batches(_remaining(changes, after_first_push), "develop")
    assert [[u.ref for u in batch] for batch in batches] == [["refs/heads/alpha", "refs/heads/main", "refs/tags/v1"]]


def test_differences_between_what_was_wanted_and_what_bitbucket_shows_become_warnings():
    wanted, _ = recreate.settings_to_apply(RECORDED, REFS)
    same = {"is_private": False, "description": "The platform API", "language": "python", "fork_policy": "no_forks",
            "project": {"key": "PLAT"}, "mainbranch": {"name": "develop"}}
    assert recreate.differences(wanted, same) == []
    other = {**same, "project": {"key": "PROJ"}, "mainbranch": {"name": "alpha"}, "is_private": True}
    warnings = recreate.differences(wanted, other)
    assert len(warnings) == 3
    assert warnings[0].startswith("the repository is in project PROJ, not PLAT")
    assert warnings[1].startswith("Bitbucket made alpha the main branch, not develop")
    assert warnings[2] == "Bitbucket shows is_private True, not False"


def test_a_live_source_is_copied_as_it_is_now_and_a_gone_one_as_recorded():
    class Live:
        def __init__(self, answer):
            self.answer = answer

        def get_repository(self, workspace, uuid):
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    now = {"description": "renamed since", "is_private": True, "mainbranch": {"name": "main"}}
    assert recreate.current_settings(Live(now), "{w}", "{r}", RECORDED) == {
        **RECORDED, "description": "renamed since", "is_private": True, "mainbranch": "main"}
    assert recreate.current_settings(Live(now), "{w}", "{r}", None) == {
        "description": "renamed since", "is_private": True, "mainbranch": "main"}
    assert recreate.current_settings(Live(NotFound("404")), "{w}", "{r}", RECORDED) == RECORDED
    assert recreate.current_settings(Live(NotFound("404")), "{w}", "{r}", None) is None


def test_reading_the_result_back_never_fails_a_finished_restore():
    refused = StubHost({("GET", "repositories/acme/api"): CredentialRejected("403")})
    assert recreate.check_result(refused, "acme", "api", {"mainbranch": "develop"}) == [
        "api could not be read back to check its settings (credential_rejected)"]
    fine = StubHost({("GET", "repositories/acme/api"): {"mainbranch": {"name": "develop"}, "is_private": True}})
    assert recreate.check_result(fine, "acme", "api", {"mainbranch": "develop", "is_private": True}) == []
