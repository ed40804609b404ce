"""Restore plans (pure): which ref goes where, what is created, moved or left alone; request validation."""
from __future__ import annotations

import pytest

from strongroom.errors import InvalidInput
from strongroom.restore import RefAction, parse_request, plan_refs, restored_name

A, B, C, T = "a" * 40, "b" * 40, "c" * 40, "d" * 40
LABELS = ("2024-05-01", "s0123")


def actions(snapshot, live, *, kind="same", mode="new-names"):
    return {a.ref: a for a in plan_refs(snapshot, live, kind=kind, mode=mode, labels=LABELS)}


def test_restored_names_keep_the_ref_kind():
    assert restored_name("refs/heads/feature/x", "2024-05-01") == "refs/heads/restored/2024-05-01/feature/x"
    assert restored_name("refs/tags/v1", "2024-05-01") == "refs/tags/restored/2024-05-01/v1"


def test_new_names_restore_a_deleted_branch_and_leave_unchanged_refs_alone():
    plan = actions({"refs/heads/main": A, "refs/heads/gone": B}, {"refs/heads/main": A})
    assert plan["refs/heads/main"] == RefAction("refs/heads/main", "skip", A, A, "refs/heads/main",
                                                "unchanged since the snapshot")
    assert plan["refs/heads/gone"] == RefAction("refs/heads/gone", "create", None, B,
                                                "refs/heads/restored/2024-05-01/gone")


def test_new_names_put_a_force_pushed_branch_next_to_the_live_one():
    plan = actions({"refs/heads/main": A}, {"refs/heads/main": C})
    assert plan["refs/heads/main"].action == "create"
    assert plan["refs/heads/main"].target_ref == "refs/heads/restored/2024-05-01/main"


def test_new_names_are_idempotent_and_fall_back_to_the_snapshot_id():
    again = actions({"refs/heads/x": A}, {"refs/heads/restored/2024-05-01/x": A})
    assert again["refs/heads/x"].action == "skip" and again["refs/heads/x"].reason == "already restored under this name"
    taken = actions({"refs/heads/x": A}, {"refs/heads/restored/2024-05-01/x": B})
    assert taken["refs/heads/x"].target_ref == "refs/heads/restored/s0123/x"
    assert taken["refs/heads/x"].action == "create"
    both = actions({"refs/heads/x": A}, {"refs/heads/restored/2024-05-01/x": B, "refs/heads/restored/s0123/x": C})
    assert both["refs/heads/x"].action == "skip" and "taken" in both["refs/heads/x"].reason


def test_a_live_ref_in_the_way_of_a_name_is_avoided_or_reported():
    plan = actions({"refs/heads/x": A}, {"refs/heads/restored": B})
    assert plan["refs/heads/x"].action == "skip"  # `restored` blocks every `restored/...` name
    overwrite = actions({"refs/heads/a/b": A}, {"refs/heads/a": B}, mode="overwrite")
    assert overwrite["refs/heads/a/b"].action == "skip" and "refs/heads/a" in overwrite["refs/heads/a/b"].reason


def test_overwrite_moves_refs_back_and_creates_missing_ones_but_deletes_nothing():
    plan = actions({"refs/heads/main": A, "refs/heads/gone": B, "refs/tags/v1": T},
                   {"refs/heads/main": C, "refs/tags/v1": T, "refs/heads/newer": C}, mode="overwrite")
    assert plan["refs/heads/main"] == RefAction("refs/heads/main", "update", C, A, "refs/heads/main")
    assert plan["refs/heads/gone"] == RefAction("refs/heads/gone", "create", None, B, "refs/heads/gone")
    assert plan["refs/tags/v1"].action == "skip"
    assert "refs/heads/newer" not in plan  # refs the snapshot does not hold are never touched


def test_a_new_repository_gets_every_ref_under_its_own_name():
    plan = actions({"refs/heads/main": A, "refs/tags/v1": T}, {}, kind="new", mode="new-names")
    assert {(a.action, a.target_ref) for a in plan.values()} == {("create", "refs/heads/main"),
                                                               ("create", "refs/tags/v1")}
    assert plan["refs/heads/main"].as_dict() == {"ref": "refs/heads/main", "action": "create", "from": None,
                                                 "to": A, "target_ref": "refs/heads/main"}


def test_request_defaults_are_a_dry_run_under_new_names_into_the_same_repository():
    req = parse_request({"snapshot_id": "s1"})
    assert (req.dry_run, req.mode, req.kind, req.refs, req.name) == (True, "new-names", "same", None, None)
    new = parse_request({"at": "2024-05-01T12:00:00", "target": {"kind": "new", "name": "api-restored"},
                         "refs": ["refs/heads/main", "refs/heads/main"], "dry_run": False})
    assert new.at.isoformat() == "2024-05-01T12:00:00+00:00" and new.refs == ("refs/heads/main",)
    assert (new.kind, new.name, new.dry_run) == ("new", "api-restored", False)


@pytest.mark.parametrize("body", [
    {}, {"snapshot_id": "s1", "at": "2024-05-01T00:00:00Z"}, {"snapshot_id": 5},
    {"snapshot_id": "s1", "mode": "force"}, {"snapshot_id": "s1", "dry_run": "no"},
    {"snapshot_id": "s1", "refs": []}, {"snapshot_id": "s1", "refs": "refs/heads/main"},
    {"snapshot_id": "s1", "target": {"kind": "elsewhere"}}, {"snapshot_id": "s1", "target": {"name": "x"}},
    {"snapshot_id": "s1", "target": {"kind": "new", "name": "Has Spaces"}}, {"at": "yesterday"},
])
def test_bad_requests_are_refused_with_a_reason(body):
    with pytest.raises(InvalidInput):
        parse_request(body)
