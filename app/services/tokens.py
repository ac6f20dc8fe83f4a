"""API tokens: shown once, stored hashed, revocable, with their last use."""

import hashlib
import secrets
from datetime import datetime, timedelta

from app.models import ApiToken, Staff, Store

TOUCH_EVERY = timedelta(seconds=60)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    store: Store, name: str = "", created_by: Staff | None = None
) -> tuple[ApiToken, str]:
    """Make a token for a store; returns the row and the raw token (never stored)."""
    raw = "rv_" + secrets.token_urlsafe(32)
    token = ApiToken.create(
        store=store,
        name=name.strip()[:100],
        prefix=raw[:10],
        token_hash=_digest(raw),
        created_by=created_by,
    )
    return token, raw


def find_active(raw: str) -> ApiToken | None:
    """The live token (with its store) whose raw text is `raw`, or None."""
    if not raw or len(raw) > 200:
        return None
    return (
        ApiToken.select(ApiToken, Store)
        .join(Store)
        .where(ApiToken.token_hash == _digest(raw), ApiToken.revoked_at.is_null())
        .first()
    )


def touch(token: ApiToken, now: datetime) -> None:
    """Record that the token was used (at most one write a minute per token)."""
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
        token.last_used_at = now


def list_tokens(store_ids: list[int]):
    """The tokens of these stores, newest first, with their store."""
    return (
        ApiToken.select(ApiToken, Store)
        .join(Store)
        .where(ApiToken.store.in_(store_ids))
        .order_by(
            ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc(), ApiToken.id.desc()
        )
    )


def revoke(token: ApiToken, now: datetime) -> bool:
    """Revoke a token for good; False when it was already revoked."""
    changed = (
        ApiToken.update(revoked_at=now)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_null())
        .execute()
    )
    if changed:
        token.revoked_at = now
    return bool(changed)
