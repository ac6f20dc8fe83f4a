"""Configuration: defaults, then environment variables, then test overrides."""

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = {
    "en": "English",
    "zh_Hans": "简体中文",
    "zh_Hant": "繁體中文",
    "th": "ไทย",
    "ms": "Bahasa Melayu",
}


def instance_dir() -> Path:
    """The folder for local state (SQLite files, the generated secret key)."""
    path = Path(os.environ.get("REVISIT_INSTANCE", ROOT / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance_dir() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load(overrides: dict | None = None) -> dict:
    """Build the app configuration from defaults, the environment and overrides."""
    inst = instance_dir()
    cfg = {
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{inst / 'revisit.db'}",
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "SMTP_URL": os.environ.get("SMTP_URL") or None,
        "SECRET_KEY": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("REVISIT_INSECURE_COOKIES") != "1"
        and os.environ.get("REVISIT_HTTPS", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": 60 * 60 * 24 * 14,
        "WTF_CSRF_TIME_LIMIT": None,
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "LANGUAGES": LANGUAGES,
        "LOGIN_MAX_FAILURES": int(os.environ.get("REVISIT_LOGIN_MAX_FAILURES", "5")),
        "LOGIN_WINDOW_MINUTES": 15,
        "TESTING": False,
    }
    if overrides:
        cfg.update(overrides)
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _secret_key()
    return cfg
