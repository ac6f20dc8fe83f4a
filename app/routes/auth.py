"""Sign in, sign out, password change and language choice."""

from urllib.parse import urlparse

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app import clock, config
from app.services import auth as auth_service

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only follow same-site relative redirects."""
    if not target:
        return url_for("home.index")
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home.index")
    return target


def _clear_session() -> None:
    """Forget everything of the old session except the language this browser chose."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form and sign staff in."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("home.index"))
    error = None
    status = 200
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        try:
            user = auth_service.sign_in(
                email,
                request.form.get("password", ""),
                ip=request.remote_addr or "",
                user_agent=request.headers.get("User-Agent", ""),
                now=clock.now(),
                max_failures=current_app.config["LOGIN_MAX_FAILURES"],
                window_minutes=current_app.config["LOGIN_WINDOW_MINUTES"],
            )
        except auth_service.SignInError as exc:
            if exc.reason == "rate_limited":
                error, status = (
                    _("Too many failed attempts. Please wait 15 minutes and try again."),
                    429,
                )
            else:
                error, status = _("That email and password do not match."), 422
        else:
            if current_user.is_authenticated:  # the replaced session must not live on
                auth_service.sign_out(current_user._get_current_object(), clock.now())
            _clear_session()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
    return render_template("auth/login.html", error=error, email=email), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Sign out and revoke this session on the server."""
    auth_service.sign_out(current_user._get_current_object(), clock.now())
    logout_user()
    _clear_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Change my password; every session (this one included) is revoked."""
    error = None
    status = 200
    if request.method == "POST":
        try:
            auth_service.change_password(
                current_user.staff,
                request.form.get("current", ""),
                request.form.get("new", ""),
                clock.now(),
            )
        except auth_service.SignInError:
            error, status = _("Your current password is not right."), 422
        except ValueError:
            error, status = (
                _(
                    "The new password must be at least %(n)d characters.",
                    n=auth_service.MIN_PASSWORD_LENGTH,
                ),
                422,
            )
        else:
            logout_user()
            _clear_session()
            flash(_("Password changed. Please sign in again."), "success")
            return redirect(url_for("auth.login"), code=303)
    return render_template("auth/password.html", error=error), status


@bp.route("/language", methods=["POST"])
def set_language():
    """Remember the chosen language for this browser (and my profile when signed in)."""
    lang = request.form.get("lang") or request.args.get("lang")
    if lang not in config.LANGUAGES:
        return redirect(_safe_next(request.args.get("next")), code=303)
    session["lang"] = lang
    if current_user.is_authenticated:
        staff = current_user.staff
        staff.locale = lang
        staff.save(only=["locale"])
    return redirect(_safe_next(request.form.get("next") or request.args.get("next")), code=303)
