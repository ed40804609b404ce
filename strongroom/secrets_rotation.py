"""Re-encrypting every stored secret under the current key (after adding a new STRONGROOM_SECRET_KEY)."""
from __future__ import annotations

from sqlalchemy import select

from .context import Context
from .store.models import Installation


def rotate_all(ctx: Context) -> int:
    """Re-encrypt shared secrets, credentials, cached tokens and webhook secrets; returns how many were rewritten."""
    count = 0
    with ctx.db.session() as s:
        for inst in s.scalars(select(Installation)):
            if inst.secret_enc:
                inst.secret_enc = ctx.box.rotate(inst.secret_enc)
                count += 1
            if inst.token_enc:
                inst.token_enc = ctx.box.rotate(inst.token_enc)
                count += 1
            if inst.hook_secret_enc:
                inst.hook_secret_enc = ctx.box.rotate(inst.hook_secret_enc)
                count += 1
    return count
