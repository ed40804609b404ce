"""forge/manifest.yml: valid against the schema shipped in the npm package @forge/manifest, least-privilege
scopes that cover every subscribed event, and routes that exist in Strongroom's web app."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = ROOT / "forge" / "manifest.yml"
FORGE_MANIFEST_VERSION = "13.7.0"  # the version the reference notes were checked against


@pytest.fixture(scope="session")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST_PATH.read_text())


@pytest.fixture(scope="session")
def forge_package(tmp_path_factory) -> Path:
    """`npm pack @forge/manifest` into a temp dir (skips, saying why, when npm or the registry is unavailable)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed; the manifest is only checked structurally")
    dest = tmp_path_factory.mktemp("forge-manifest")
    try:
        done = subprocess.run([npm, "pack", f"@forge/manifest@{FORGE_MANIFEST_VERSION}", "--pack-destination",
                               str(dest), "--silent"], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("the npm registry did not answer in time")
    tarballs = list(dest.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        pytest.skip(f"npm pack @forge/manifest failed: {done.stderr.strip()[-300:]}")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package" / "out"


def schema_errors(package: Path, document: dict) -> list[str]:
    schema = json.loads((package / "schema" / "manifest-schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_manifest_is_valid_against_the_forge_schema(forge_package, manifest):
    assert schema_errors(forge_package, manifest) == []


def test_the_schema_check_catches_a_broken_manifest(forge_package, manifest):
    broken = copy.deepcopy(manifest)
    broken["modules"]["scheduledTrigger"][0]["interval"] = "everyMinute"
    broken["remotes"][0]["operations"] = ["teleport"]
    assert len(schema_errors(forge_package, broken)) >= 2


def test_scopes_are_known_and_cover_every_subscribed_event(forge_package, manifest):
    known = set(json.loads((forge_package / "scopes" / "shipyard-scopes.json").read_text()))
    scopes = set(manifest["permissions"]["scopes"])
    assert scopes <= known
    raw = json.loads((forge_package / "mapping" / "product-event-to-scope-mapping.json").read_text())
    mapping = {m["productEvent"]: m["oAuthScopes"]["current"] for m in raw["mapping"]}
    for trigger in manifest["modules"]["trigger"]:
        for event in trigger["events"]:
            if event.startswith("avi:bitbucket:"):
                assert set(mapping[event]) <= scopes, (event, mapping[event])


def test_structure_endpoints_and_routes_match_the_web_app(manifest, tmp_path):
    """Checked without npm: what the Forge platform needs from us, and what our routes expect."""
    from addon import create_app
    from strongroom.config import Settings
    from strongroom.ports import RecordingDispatcher

    modules = manifest["modules"]
    endpoints = {e["key"]: e for e in modules["endpoint"]}
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,23}", key) for key in endpoints)
    remotes = {r["key"]: r for r in manifest["remotes"]}
    assert all(e["remote"] in remotes and e["auth"]["appSystemToken"]["enabled"] is True for e in endpoints.values())
    assert "compute" in remotes["strongroom"]["operations"]  # invokeRemote needs it
    assert "read:app-system-token" in manifest["permissions"]["scopes"]
    used = {t["endpoint"] for t in modules["trigger"]} | {modules["scheduledTrigger"][0]["endpoint"]} \
        | {modules["preUninstall"][0]["endpoint"]} \
        | {p["resolver"]["endpoint"] for p in modules["bitbucket:workspaceSettingsMenuPage"]}
    assert used == set(endpoints)
    events = {e for t in modules["trigger"] for e in t["events"]}
    assert {"avi:forge:installed:app", "avi:forge:upgraded:app", "avi:bitbucket:push:repository",
            "avi:bitbucket:created:repository", "avi:bitbucket:deleted:repository",
            "avi:bitbucket:updated:repository", "avi:bitbucket:created:pullrequest"} <= events
    assert modules["scheduledTrigger"][0]["interval"] in ("fiveMinute", "hour")  # system tokens live >= 2 h
    for resource in manifest["resources"]:
        assert (MANIFEST_PATH.parent / resource["path"]).is_file()
    settings = Settings(data_dir=tmp_path, secret_keys=("k" * 40,), database_url=f"sqlite:///{tmp_path}/x.db",
                        forge_app_id="ari:cloud:ecosystem::app/x")
    app = create_app(settings, dispatcher=RecordingDispatcher())
    rules = {r.rule: r.methods for r in app.url_map.iter_rules()}
    for endpoint in endpoints.values():
        if "route" in endpoint:
            assert "POST" in rules[endpoint["route"]["path"]], endpoint
    assert "/forge/ui/api/v1/<path:path>" in rules
