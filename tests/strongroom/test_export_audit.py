"""Offline exports in the audit log: the export appends a durable line to the data directory, the service
imports each line once as an "export" entry of the workspace's tenant."""
from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "vault"))

from test_vault_support import REPOSITORY, WORKSPACE, Git, Upstream, git, upstream  # noqa: E402,F401

from strongroom import audit  # noqa: E402
from strongroom.errors import NotFound  # noqa: E402
from strongroom.export import export_offline  # noqa: E402
from strongroom.janitor import redispatch_stale_work  # noqa: E402
from strongroom.ports import RecordingDispatcher  # noqa: E402
from strongroom.store.models import Tenant  # noqa: E402
from strongroom.vault import SnapshotEntry, Vault  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TAKEN = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
USER = pwd.getpwuid(os.getuid()).pw_name  # the OS's name for the uid, whatever $USER says
OTHER_WORKSPACE = "{0a0b0c0d-1111-4222-8333-444455556666}"
OTHER_REPOSITORY = "{9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}"


def build_vault(data: Path, upstream: Upstream, workspace: str = WORKSPACE, repository: str = REPOSITORY,
                slug: str = "acme") -> dict:
    """One vault with one snapshot ("s-one") in ``data``, found by its manifest like a real one."""
    vault = Vault(data / "vaults")
    mirror = vault.open(vault.mirror_path(workspace, repository))
    mirror.write_manifest({"format": 1, "workspace": {"uuid": workspace, "slug": slug, "name": slug.title()},
                           "repository": {"uuid": repository, "slug": "api", "name": "API",
                                          "full_name": f"{slug}/api"}})
    refs = mirror.sync(upstream.url, None).after
    mirror.record_snapshot(SnapshotEntry("s-one", TAKEN, "install", refs))
    return refs


def offline_lines(data: Path) -> list[dict]:
    path = audit.offline_log_path(data)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def add_tenant(ctx, workspace: str, slug: str) -> str:
    with ctx.db.session() as s:
        tenant = Tenant(workspace_uuid=workspace, workspace_slug=slug)
        s.add(tenant)
        s.flush()
        return tenant.id


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def exports(ctx, tenant_id: str) -> list[dict]:
    return audit.audit_log(ctx, tenant_id, action="export", page=1, pagelen=50)[0]


# --- writing: the offline export ---------------------------------------------------------------------

def test_each_offline_export_appends_one_line_saying_who_when_what_and_where(tmp_path, upstream, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("USER", "someone-else")  # who is the OS's answer, not the environment's
    monkeypatch.setenv("LOGNAME", "someone-else")
    refs = build_vault(data, upstream)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    export_offline(data, "acme", "api", to=tmp_path / "out" / "api.git")
    export_offline(data, "ACME", REPOSITORY, snapshot_id="s-one", bundle=tmp_path / "api.bundle")
    first, second = offline_lines(data)
    assert first["id"] != second["id"] and all(re.fullmatch(r"l[0-9a-f]{24}", x["id"]) for x in (first, second))
    assert before <= moment(first["at"]) <= datetime.now(timezone.utc)
    assert first["at"].endswith("Z")
    assert first["who"] == {"user": USER, "host": socket.gethostname()}
    assert first["workspace"] == {"uuid": WORKSPACE, "slug": "acme"}
    assert first["repository"] == {"uuid": REPOSITORY, "slug": "api", "full_name": "acme/api"}
    assert (first["snapshot"], first["refs"], first["action"]) == ("s-one", len(refs), "export")
    assert first["destination"] == {"kind": "repository", "path": str((tmp_path / "out" / "api.git").absolute())}
    assert second["destination"] == {"kind": "bundle", "path": str((tmp_path / "api.bundle").absolute())}
    # names, ids and paths only: nothing from the environment, no credentials
    assert set(first) == {"format", "id", "action", "at", "who", "workspace", "repository", "snapshot", "refs",
                          "destination"}
    assert oct(audit.offline_log_path(data).stat().st_mode & 0o777) == "0o644"


def test_an_export_that_fails_records_nothing(tmp_path, upstream):
    data = tmp_path / "data"
    build_vault(data, upstream)
    with pytest.raises(NotFound):
        export_offline(data, "acme", "api", snapshot_id="s-nope", to=tmp_path / "x.git")
    assert not (data / "audit").exists()


def test_an_unwritable_audit_log_warns_and_the_export_still_succeeds(tmp_path, upstream, git, caplog):
    data = tmp_path / "data"
    refs = build_vault(data, upstream)
    (data / "audit").write_text("not a directory")  # the log's directory cannot be created
    warnings: list[str] = []
    entry = export_offline(data, "acme", "api", to=tmp_path / "a.git", warn=warnings.append)
    assert entry.id == "s-one" and git.refs(tmp_path / "a.git") == refs
    assert len(warnings) == 1 and "NOT in the audit log" in warnings[0]
    hand_line = json.loads(warnings[0].splitlines()[-1])  # what to append to the live log by hand
    assert hand_line["snapshot"] == "s-one" and hand_line["destination"]["kind"] == "repository"
    with caplog.at_level(logging.WARNING, logger="strongroom.export"):
        export_offline(data, "acme", "api", bundle=tmp_path / "a.bundle")  # no callback: logged instead
    assert "NOT in the audit log" in caplog.text and (tmp_path / "a.bundle").is_file()


def _read_only(data: Path, command: list[str]) -> list[str]:
    """``command`` run with ``data`` mounted read-only (a private mount namespace), like a mounted copy."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is not None and probe.returncode == 0:
        script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        return ["unshare", "-rm", "sh", "-c", script, "sh", str(data), *command]
    if os.geteuid() != 0:  # no namespaces: permissions make it read-only for an ordinary user
        for path in (data, *data.rglob("*")):
            path.chmod(path.stat().st_mode & ~0o222)
        return command
    pytest.skip("cannot make a directory read-only for root without mount namespaces")


def test_cli_export_from_a_read_only_data_dir_succeeds_with_a_clear_warning(tmp_path, upstream, git):
    data = tmp_path / "data"
    refs = build_vault(data, upstream)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(data), "--workspace", "acme",
               "--repository", "api", "--to", str(tmp_path / "ro.git")]
    out = subprocess.run(_read_only(data, command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "s-one" in out.stdout and git.refs(tmp_path / "ro.git") == refs
    assert "warning: the export succeeded but is NOT in the audit log" in out.stderr
    assert str(audit.offline_log_path(data)) in out.stderr
    assert not (data / "audit").exists()


# --- importing: the service ---------------------------------------------------------------------------

def test_an_offline_export_becomes_exactly_one_audit_entry_of_its_tenant(unit_ctx, tmp_path, upstream):
    data = unit_ctx.settings.data_dir
    build_vault(data, upstream)
    tenant_id = add_tenant(unit_ctx, WORKSPACE, "acme")
    other_id = add_tenant(unit_ctx, OTHER_WORKSPACE, "other")
    export_offline(data, "acme", "api", bundle=tmp_path / "api.bundle")
    (line,) = offline_lines(data)
    assert audit.import_offline_exports(unit_ctx) == 1
    assert audit.import_offline_exports(unit_ctx) == 0
    (entry,) = exports(unit_ctx, tenant_id)  # listing imports too, and adds nothing the second time
    assert entry["id"] == line["id"] and moment(entry["at"]) == moment(line["at"])  # when it was exported
    assert entry["actor"] == f"offline:{USER}@{socket.gethostname()}"
    assert (entry["action"], entry["target"]) == ("export", "acme/api")
    assert entry["details"] == {"offline": True, "snapshot": "s-one", "format": "bundle",
                                "destination": str((tmp_path / "api.bundle").absolute()),
                                "refs": line["refs"], "repository": REPOSITORY,
                                "user": USER, "host": socket.gethostname()}
    assert exports(unit_ctx, other_id) == []


def test_concurrent_importers_add_each_line_once(shared_ctx, tmp_path, upstream, monkeypatch):
    data, workspace = shared_ctx.settings.data_dir, "{%s}" % uuid.uuid4()  # the database outlives this test
    build_vault(data, upstream, workspace=workspace)
    tenant_id = add_tenant(shared_ctx, workspace, "acme")
    export_offline(data, "acme", "api", to=tmp_path / "api.git")
    # Both importers look before either commits, so both insert: the primary key lets exactly one through.
    both_looked = threading.Barrier(2)

    def nothing_imported_yet(s, ids) -> set:
        both_looked.wait(10)
        return set()

    monkeypatch.setattr(audit, "_imported_ids", nothing_imported_yet)
    with ThreadPoolExecutor(2) as pool:
        added = sorted(pool.map(lambda _: audit.import_offline_exports(shared_ctx), range(2)))
    assert added == [0, 1]
    monkeypatch.undo()
    assert audit.import_offline_exports(shared_ctx) == 0 and len(exports(shared_ctx, tenant_id)) == 1


def test_malformed_lines_are_skipped_with_a_warning_and_the_rest_imported(unit_ctx, tmp_path, upstream, caplog):
    data = unit_ctx.settings.data_dir
    build_vault(data, upstream)
    tenant_id = add_tenant(unit_ctx, WORKSPACE, "acme")
    log_path = audit.offline_log_path(data)
    log_path.parent.mkdir(parents=True)
    good = audit.offline_export_line({"uuid": WORKSPACE, "slug": "acme"}, {"uuid": REPOSITORY, "slug": "api"},
                                     "s-one", 2, "bundle", tmp_path / "b.bundle")
    bad_id = {**good, "id": "'; drop table audit_log; --"}
    no_who = {key: value for key, value in good.items() if key != "who"}
    log_path.write_text("not json at all\n" + json.dumps(bad_id) + "\n" + json.dumps(no_who) + "\n[1, 2]\n")
    export_offline(data, "acme", "api", to=tmp_path / "api.git")
    with caplog.at_level(logging.WARNING, logger="strongroom.audit"):
        assert audit.import_offline_exports(unit_ctx) == 1
        assert len(caplog.records) == 4
        assert all(f"line {n} skipped" in r.getMessage() for n, r in enumerate(caplog.records, 1))
        caplog.clear()
        (entry,) = exports(unit_ctx, tenant_id)  # imports again: nothing new, and no second round of warnings
        assert not caplog.records
    assert entry["details"]["format"] == "repository"
    assert len(log_path.read_text().splitlines()) == 5  # the service never rewrites the file


def test_a_line_for_an_unknown_workspace_waits_until_its_tenant_exists(unit_ctx, tmp_path, upstream):
    data = unit_ctx.settings.data_dir
    build_vault(data, upstream)
    build_vault(data, upstream, OTHER_WORKSPACE, OTHER_REPOSITORY, slug="other")
    tenant_id = add_tenant(unit_ctx, WORKSPACE, "acme")
    export_offline(data, "other", "api", to=tmp_path / "other.git")
    export_offline(data, "acme", "api", to=tmp_path / "acme.git")
    dispatcher = RecordingDispatcher()
    assert redispatch_stale_work(unit_ctx, dispatcher)["offline_exports"] == 1  # the janitor imports
    assert len(exports(unit_ctx, tenant_id)) == 1
    assert redispatch_stale_work(unit_ctx, dispatcher)["offline_exports"] == 0  # still pending, not lost
    other_id = add_tenant(unit_ctx, OTHER_WORKSPACE.strip("{}").upper(), "other")  # uuids compare loosely
    assert redispatch_stale_work(unit_ctx, dispatcher)["offline_exports"] == 1
    (entry,) = exports(unit_ctx, other_id)
    assert entry["target"] == "other/api" and entry["details"]["destination"] == str(tmp_path / "other.git")
    assert len(exports(unit_ctx, tenant_id)) == 1 and dispatcher.calls == []


def test_the_listing_answers_even_when_the_offline_log_cannot_be_read(unit_ctx, caplog):
    tenant_id = add_tenant(unit_ctx, WORKSPACE, "acme")
    audit.offline_log_path(unit_ctx.settings.data_dir).mkdir(parents=True)  # a directory where the file belongs
    with caplog.at_level(logging.ERROR, logger="strongroom.audit"):
        assert exports(unit_ctx, tenant_id) == []
    assert "could not import offline exports" in caplog.text
