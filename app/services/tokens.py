"""API tokens: shown once, stored hashed, revocable."""

import hashlib
import secrets

from app.models import ApiToken, Staff, Store


def create_token(
    store: Store, name: str = "", created_by: Staff | None = None
) -> tuple[ApiToken, str]:
    """Make a token for a store; returns the row and the raw token (never stored)."""
    raw = "rv_" + secrets.token_urlsafe(32)
    token = ApiToken.create(
        store=store,
        name=name,
        prefix=raw[:10],
        token_hash=hashlib.sha256(raw.encode()).hexdigest(),
        created_by=created_by,
    )
    return token, raw
