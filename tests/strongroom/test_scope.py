import pytest

from strongroom.errors import InvalidInput
from strongroom.scope import in_scope, set_mode
from strongroom.store.models import Tenant


@pytest.mark.parametrize("mode,choice,expected", [
    ("all", None, True), ("all", "include", True), ("all", "exclude", False),
    ("selected", None, False), ("selected", "include", True), ("selected", "exclude", False)])
def test_effective_scope(mode, choice, expected):
    assert in_scope(mode, choice) is expected


def test_unknown_mode_is_rejected():
    tenant = Tenant(workspace_uuid="{x}", workspace_slug="x", scope_mode="all")
    with pytest.raises(InvalidInput):
        set_mode(tenant, "some")
    assert tenant.scope_mode == "all"
