"""Parsing of the Connect bodies Bitbucket posts to us: lifecycle callbacks and wrapped webhooks."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import InvalidInput

LIFECYCLE_EVENTS = ("installed", "uninstalled")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(rf"\{{({_UUID})\}}|({_UUID})")
_BRACED_UUID_RE = re.compile(rf"\{{{_UUID}\}}")
# Registered apps get clientKey "ari:cloud:bitbucket::app/{<workspace uuid>}/<app key>";
# unregistered ones get "connection:<n>", which carries no workspace.
_CLIENT_KEY_RE = re.compile(r"ari:cloud:bitbucket::app/(\{[^}/]+\})/.+")


@dataclass(frozen=True)
class LifecyclePayload:
    """An ``installed`` or ``uninstalled`` callback body, validated."""

    event_type: str
    product_type: str
    key: str
    client_key: str
    shared_secret: str | None = field(repr=False)
    base_url: str
    base_api_url: str
    principal_uuid: str
    principal_username: str | None
    principal_display_name: str | None
    raw: dict = field(repr=False)

    @property
    def workspace_uuid(self) -> str:
        """The workspace the app was installed into: the principal's uuid, braced, lower-case."""
        return normalize_uuid(self.principal_uuid)


@dataclass(frozen=True)
class ConnectWebhook:
    """A Connect-module webhook body: ``{"event": <key>, "data": {...}}``."""

    event: str
    data: dict


def normalize_uuid(value: str) -> str:
    """Return ``{uuid}`` in lower case from a uuid written with or without braces."""
    match = _UUID_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"not a uuid: {value!r}"[:120])
    return "{" + (match.group(1) or match.group(2)).lower() + "}"


def workspace_uuid_from_client_key(client_key: str) -> str | None:
    """Return the workspace uuid embedded in a registered app's clientKey, or None."""
    match = _CLIENT_KEY_RE.fullmatch(client_key) if isinstance(client_key, str) else None
    if match is None:
        return None
    try:
        return normalize_uuid(match.group(1))
    except InvalidInput:
        return None


def parse_lifecycle_payload(body: bytes, expected_event: str) -> LifecyclePayload:
    """Parse and validate a lifecycle callback body for ``expected_event``."""
    if expected_event not in LIFECYCLE_EVENTS:
        raise InvalidInput(f"unknown lifecycle event {expected_event!r}")
    doc = _json_object(body)
    event_type = _string(doc, "eventType")
    if event_type != expected_event:
        raise InvalidInput(f"eventType is {event_type!r}, expected {expected_event!r}")
    product_type = _string(doc, "productType")
    if product_type != "bitbucket":
        raise InvalidInput(f"productType must be 'bitbucket', not {product_type!r}")
    principal = doc.get("principal")
    if not isinstance(principal, dict):
        raise InvalidInput("principal must be an object")
    principal_uuid = _string(principal, "uuid", where="principal.uuid")
    if not _BRACED_UUID_RE.fullmatch(principal_uuid):
        raise InvalidInput("principal.uuid must be a uuid in braces")
    client_key = _string(doc, "clientKey")
    _check_client_key_workspace(client_key, normalize_uuid(principal_uuid))
    return LifecyclePayload(
        event_type=event_type,
        product_type=product_type,
        key=_string(doc, "key"),
        client_key=client_key,
        shared_secret=_shared_secret(doc, event_type),
        base_url=_absolute_url(doc, "baseUrl"),
        base_api_url=_absolute_url(doc, "baseApiUrl"),
        principal_uuid=normalize_uuid(principal_uuid),
        principal_username=_optional_string(principal, "username", "principal.username"),
        principal_display_name=_optional_string(principal, "display_name", "principal.display_name"),
        raw=doc,
    )


def parse_connect_webhook(body: bytes) -> ConnectWebhook:
    """Parse the wrapped body of a Connect-module webhook."""
    doc = _json_object(body)
    event = _string(doc, "event")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise InvalidInput("webhook data must be an object")
    return ConnectWebhook(event=event, data=data)


def _json_object(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidInput("body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("body must be a JSON object")
    return doc


def _string(doc: dict, name: str, *, where: str | None = None) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where or name} must be a non-empty string")
    return value


def _optional_string(doc: dict, name: str, where: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    return value


def _shared_secret(doc: dict, event_type: str) -> str | None:
    # Only "installed" delivers a secret; "uninstalled" is authenticated with the stored one,
    # so anything in its body is ignored rather than trusted.
    if event_type != "installed":
        return None
    return _string(doc, "sharedSecret")


def _absolute_url(doc: dict, name: str) -> str:
    value = _string(doc, name)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{name} must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise InvalidInput(f"{name} must not carry credentials, a query or a fragment")
    return value.rstrip("/")


def _check_client_key_workspace(client_key: str, principal_uuid: str) -> None:
    # A registered app's clientKey names its workspace; it must be the principal's.
    embedded = workspace_uuid_from_client_key(client_key)
    if embedded is not None and embedded != principal_uuid:
        raise InvalidInput("clientKey does not belong to principal.uuid")
