"""Channel credentials encrypted at rest with a key derived from SECRET_KEY."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken


def secret_key() -> str:
    """The app's SECRET_KEY (from the running app, else the configured one)."""
    try:
        from flask import current_app

        return current_app.config["SECRET_KEY"]
    except RuntimeError:
        from app import config

        return config.load()["SECRET_KEY"]


def _fernet(key: str | None = None) -> Fernet:
    digest = hashlib.sha256(
        b"revisit-channel-secrets\x00" + (key or secret_key()).encode()
    ).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(values: dict, key: str | None = None) -> str:
    """Encrypt a dict of credentials to a token for ChannelSetting.secret."""
    if not values:
        return ""
    raw = json.dumps(values, sort_keys=True).encode()
    return _fernet(key).encrypt(raw).decode()


def decrypt(token: str, key: str | None = None) -> dict:
    """Decrypt ChannelSetting.secret back to a dict (empty when unset or unreadable)."""
    if not token:
        return {}
    try:
        return json.loads(_fernet(key).decrypt(token.encode()))
    except (InvalidToken, ValueError):
        return {}


def mask(value: str | None) -> str:
    """Show only the last 4 characters of a credential."""
    if not value:
        return ""
    value = str(value)
    if len(value) <= 4:
        return "•" * len(value)
    return "•" * 8 + value[-4:]
