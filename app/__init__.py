"""Revisit: follow-up plans that bring clients back to service businesses."""

import contextlib
import logging

from flask import Flask, g, request, session
from flask_babel import Babel
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from app import clock, compression, config
from app.db import db, init_db, interactive_writer

csrf = CSRFProtect()
login_manager = LoginManager()
babel = Babel()
htmx_ext = Htmx()
log = logging.getLogger(__name__)


def select_locale() -> str:
    """The viewer's language: their choice, their profile, their browser, else English."""
    languages = list(config.LANGUAGES)
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    best = request.accept_languages.best_match(
        ["en", "zh-CN", "zh-Hans", "zh-TW", "zh-HK", "zh-Hant", "zh", "th", "ms"]
    )
    mapping = {
        "zh-CN": "zh_Hans",
        "zh-Hans": "zh_Hans",
        "zh": "zh_Hans",
        "zh-TW": "zh_Hant",
        "zh-HK": "zh_Hant",
        "zh-Hant": "zh_Hant",
        "th": "th",
        "ms": "ms",
    }
    return mapping.get(best or "", "en")


def select_timezone() -> str:
    """Times are shown in the current store's timezone."""
    store = getattr(g, "store", None)
    return store.timezone if store is not None else "UTC"


def create_app(overrides: dict | None = None) -> Flask:
    """Build the Flask app: config → db → extensions → babel → blueprints → errors."""
    app = Flask(__name__, instance_path=str(config.instance_dir()))
    app.config.update(config.load(overrides))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if app.config.get("DATABASE") is not None:
        db.initialize(app.config["DATABASE"])
    else:
        init_db(app.config["DATABASE_URL"])

    csrf.init_app(app)
    htmx_ext.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = None
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    compression.init_app(app)  # registered first so it runs after every other after_request

    from app.services import auth as auth_service

    login_manager.user_loader(auth_service.load_session_user)

    @app.before_request
    def _connect():
        try:
            g.db_opened = db.connect(reuse_if_open=True)
        except Exception:
            # /healthz answers 503 for a database that is down; every other page fails here.
            if not getattr(app.view_functions.get(request.endpoint), "checks_database", False):
                raise

    @app.before_request
    def _writer_gate():
        # A request that changes data goes ahead of the engine's batches on SQLite.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            g.writer_gate = contextlib.ExitStack()
            g.writer_gate.enter_context(interactive_writer())

    @app.teardown_request
    def _close(exc):
        if gate := g.pop("writer_gate", None):
            gate.close()
        # Close only what this request opened (a test or a job may hold the connection).
        if g.pop("db_opened", False) and not db.is_closed():
            db.close()

    from app import templating

    templating.init_app(app)

    from app.routes import register_blueprints

    register_blueprints(app)

    from app import errors

    errors.init_app(app)

    from app import cli

    cli.register(app)

    @app.context_processor
    def _frozen_clock():
        return {"frozen_at": clock.frozen_at()}

    return app
