"""The Connect descriptor: a reviewable JSON template plus ``render``. Imports nothing of ours."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).with_name("atlassian-connect.json")


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def _substitute(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, replacement in mapping.items():
            value = value.replace(placeholder, replacement)
        return value
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


def render(base_url: str, app_key: str) -> dict[str, Any]:
    """The descriptor for a deployment reachable at ``base_url`` under the app key ``app_key``."""
    mapping = {"${BASE_URL}": base_url.rstrip("/"), "${APP_KEY}": app_key}
    return _substitute(copy.deepcopy(_template()), mapping)


def urls(descriptor: dict[str, Any]) -> list[str]:
    """Every relative URL the descriptor asks the host to call (lifecycle, webhooks, pages)."""
    found = list(descriptor.get("lifecycle", {}).values())
    for name, modules in descriptor.get("modules", {}).items():
        for module in modules if isinstance(modules, list) else [modules]:
            if isinstance(module, dict) and "url" in module:
                found.append(module["url"])
    return found
