"""Repository and workspace webhooks registered through REST (token mode), reconciled idempotently.

Ours are recognised by their URL (it names our add-on and the workspace) and our description; a
reconcile updates the first and deletes duplicates, so restarting never piles hooks up (reference §14).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote

from ..connect.payloads import normalize_uuid
from ..errors import InvalidInput, NotFound
from .client import HostClient

HOOK_DESCRIPTION = "Strongroom backups"
REPOSITORY_EVENTS = ("repo:push", "repo:created", "repo:deleted", "repo:updated", "repo:transfer",
                     "repo:imported")
PULLREQUEST_EVENTS = ("pullrequest:created", "pullrequest:updated", "pullrequest:fulfilled",
                      "pullrequest:rejected", "pullrequest:comment_created", "pullrequest:comment_updated",
                      "pullrequest:comment_deleted", "pullrequest:approved", "pullrequest:unapproved")


@dataclass(frozen=True)
class RegisteredHook:
    """One hook we own: its subject path (``workspaces/x`` or ``repositories/x/{uuid}``) and uuid."""

    subject: str
    uuid: str

    def as_dict(self) -> dict:
        return {"subject": self.subject, "uuid": self.uuid}


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or value in (".", ".."):
        raise InvalidInput("a workspace, repository or hook id must be a slug or a {uuid}")
    if value.startswith("{"):
        value = normalize_uuid(value)
    return quote(value, safe="")


def workspace_subject(workspace: str) -> str:
    """The REST path of a workspace as a hook subject."""
    return f"workspaces/{_segment(workspace)}"


def repository_subject(workspace: str, repository: str) -> str:
    """The REST path of a repository as a hook subject."""
    return f"repositories/{_segment(workspace)}/{_segment(repository)}"


def list_hooks(client: HostClient, subject: str) -> list[dict]:
    """Every hook on a subject (needs the webhook read scope)."""
    return list(client.iter_paged(f"{subject}/hooks"))


def ensure_hook(client: HostClient, subject: str, *, url: str, events: Iterable[str], secret: str) -> RegisteredHook:
    """Create our hook on ``subject`` or update the one already there (events, secret); drop duplicates."""
    body = {"description": HOOK_DESCRIPTION, "url": url, "active": True, "events": sorted(set(events)),
            "secret": secret}
    ours = [hook for hook in list_hooks(client, subject) if hook.get("url") == url and isinstance(hook.get("uuid"), str)]
    if ours:
        keep, extra = ours[0], ours[1:]
        client.request_json("PUT", f"{subject}/hooks/{_segment(keep['uuid'])}", json_body=body)
        for hook in extra:
            delete_hook(client, RegisteredHook(subject, hook["uuid"]))
        return RegisteredHook(subject, keep["uuid"])
    created = client.request_json("POST", f"{subject}/hooks", json_body=body)
    uid = created.get("uuid")
    if not isinstance(uid, str) or not uid:
        raise InvalidInput("the host created a webhook but did not say its uuid")
    return RegisteredHook(subject, uid)


def delete_hook(client: HostClient, hook: RegisteredHook) -> bool:
    """Delete one of our hooks; False when it was gone already."""
    try:
        client.request_json("DELETE", f"{hook.subject}/hooks/{_segment(hook.uuid)}")
    except NotFound:
        return False
    return True
