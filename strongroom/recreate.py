"""Recreating a repository on Bitbucket as it was: its settings in the creation request, its main branch
pushed first, and a comparison with what Bitbucket made of it afterwards.

What comes back is what ``POST /2.0/repositories/{workspace}/{slug}`` accepts: description, privacy
(never public unless the repository was public), project, language and fork policy. The main branch
cannot be set over REST after creation (BCLOUD-20340: ``PUT`` ignores ``mainbranch``); Bitbucket makes
the first branch pushed to an empty repository its main branch, so that branch goes in a push of its own
before the others. Permissions, branch restrictions, webhooks and the like are not restored.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

from .errors import Conflict, InvalidInput, NotFound, PermanentError, RepositoryGone
from .host.client import HostClient, HostRejected
from .host.writes import check_project_key, create_repository, find_repository, project_exists
from .repositories import settings_from_rest
from .vault.push import RefUpdate

NOT_RECORDED = ("Strongroom has not recorded this repository's settings (they are read at each workspace "
                "sweep); it is created private, in the workspace's default project, and Bitbucket makes the "
                "first branch pushed its main branch")


def settings_to_apply(recorded: Mapping | None, refs: Mapping[str, str]) -> tuple[dict, list[str]]:
    """What a new repository gets from the recorded settings when ``refs`` are restored into it, and
    warnings about what cannot come back (pure: the project is checked separately)."""
    recorded = recorded or {}
    warnings = [] if recorded else [NOT_RECORDED]
    project = recorded.get("project") if isinstance(recorded.get("project"), Mapping) else None
    main = recorded.get("mainbranch")
    if main and f"refs/heads/{main}" not in refs:
        warnings.append(f"the main branch {main} is not among the restored refs; Bitbucket makes the first "
                        "branch pushed the main branch")
        main = None
    elif recorded and not main and any(ref.startswith("refs/heads/") for ref in refs):
        warnings.append("the main branch is not known; Bitbucket makes the first branch pushed the main branch")
    settings = {"is_private": recorded.get("is_private") is not False,
                "project": {"key": project["key"], "name": project.get("name", "")} if project else None,
                "description": recorded.get("description") or "", "language": recorded.get("language") or "",
                "fork_policy": recorded.get("fork_policy"), "mainbranch": main or None}
    return settings, warnings


def with_project_checked(settings: dict, exists: bool | None) -> tuple[dict, list[str]]:
    """Keep the project if it exists (``confirmed``); drop it (the default project) with a warning if it is
    gone; keep it unconfirmed if the host would not say: if Bitbucket then refuses it, the repository is
    created in the default project and the job item says so."""
    project = settings.get("project")
    if not project:
        return settings, []
    if exists is False:
        return ({**settings, "project": None},
                [f"project {project['key']} no longer exists; the repository is created in the workspace's "
                 "default project"])
    return {**settings, "project": {**project, "confirmed": exists is True}}, []


class ProjectCheck:
    """Whether projects still exist, asked of the host once per key (a recovery plans many repositories)."""

    def __init__(self, host: HostClient, workspace: str) -> None:
        self._host, self._workspace = host, workspace
        self._known: dict[str, bool | None] = {}

    def __call__(self, key: str) -> bool | None:
        """True, False, or None when the host will not tell (see ``host.writes.project_exists``)."""
        if key not in self._known:
            try:
                self._known[key] = project_exists(self._host, self._workspace, check_project_key(key))
            except InvalidInput:
                self._known[key] = False  # not a key Bitbucket could have: never sent
        return self._known[key]


def plan_settings(recorded: Mapping | None, refs: Mapping[str, str],
                  projects: Callable[[str], bool | None]) -> tuple[dict, list[str]]:
    """The settings a restore to a new repository will apply, and its warnings (the plan's part)."""
    settings, warnings = settings_to_apply(recorded, refs)
    if settings["project"]:
        settings, more = with_project_checked(settings, projects(settings["project"]["key"]))
        warnings += more
    return settings, warnings


def create_with_settings(host: HostClient, workspace: str, name: str, settings: Mapping) -> dict:
    """Create the repository with ``settings``; if Bitbucket refuses the request while it names a project
    (a project deleted since the plan is a 400), create it once more without one (the default project)."""
    try:
        return create_repository(host, workspace, name, settings)
    except HostRejected:
        if not settings.get("project"):
            raise
    return create_repository(host, workspace, name, {**settings, "project": None})


def ensure_repository(host: HostClient, workspace: str, name: str, settings: Mapping, planned: Mapping[str, str],
                      live_refs: Callable[[str], Mapping[str, str]]) -> str:
    """The clone URL of the new repository: created with ``settings``, or the one an earlier attempt of this
    restore created (it holds no ref the plan does not put there, ``planned``: ref -> value)."""
    existing = find_repository(host, workspace, name)
    if existing is None:
        return host.clone_url(create_with_settings(host, workspace, name, settings))
    url = host.clone_url(existing)
    if any(planned.get(ref) != oid for ref, oid in live_refs(url).items()):
        raise Conflict(f"a repository named {name} already exists on Bitbucket and holds other refs; "
                       "nothing was changed")
    return url


def push_batches(updates: Sequence[RefUpdate], mainbranch: str | None) -> list[list[RefUpdate]]:
    """The pushes to make, in order: the main branch alone first (Bitbucket makes the first branch pushed
    to an empty repository its main branch), then everything else in one atomic push."""
    main = f"refs/heads/{mainbranch}" if mainbranch else None
    first = [u for u in updates if u.ref == main]
    rest = [u for u in updates if u.ref != main]
    return [batch for batch in (first, rest) if batch]


def current_settings(host: HostClient, workspace: str, uuid: str, recorded: Mapping | None) -> dict | None:
    """The source repository's settings as the host shows them now (over the recorded ones), or the recorded
    ones if it is gone: a restore of a live repository to a new one copies its current settings."""
    try:
        live = settings_from_rest(host.get_repository(workspace, uuid))
    except (RepositoryGone, NotFound):
        return dict(recorded) if recorded else None
    return {**(recorded or {}), **live}


def differences(wanted: Mapping, repository: Mapping) -> list[str]:
    """Warnings for every setting the host's repository object does not show as ``wanted`` (pure); the
    job item's warnings after a restore to a new repository."""
    actual = settings_from_rest(repository)
    warnings = []
    want_project = (wanted.get("project") or {}).get("key")
    got_project = (actual.get("project") or {}).get("key")
    if want_project and got_project != want_project:
        warnings.append(f"the repository is in project {got_project or '(unknown)'}, not {want_project}: "
                        f"Bitbucket refused project {want_project} (deleted?)")
    if wanted.get("mainbranch") and actual.get("mainbranch") != wanted["mainbranch"]:
        warnings.append(f"Bitbucket made {actual.get('mainbranch') or 'no branch'} the main branch, not "
                        f"{wanted['mainbranch']}; change it in the repository settings")
    for key in ("is_private", "description", "language", "fork_policy"):
        if wanted.get(key) not in (None, "") and key in actual and actual[key] != wanted[key]:
            warnings.append(f"Bitbucket shows {key} {actual[key]!r}, not {wanted[key]!r}")
    return warnings


def check_result(host: HostClient, workspace: str, name: str, wanted: Mapping) -> list[str]:
    """Read the recreated repository back and say where it differs from ``wanted``. The refs are restored by
    now: a permanent failure to read it is a warning, not a failed restore (a transient one is retried)."""
    try:
        repository = find_repository(host, workspace, name)
    except PermanentError as exc:
        return [f"{name} could not be read back to check its settings ({exc.code})"]
    if repository is None:
        return [f"{name} could not be read back to check its settings"]
    return differences(wanted, repository)
