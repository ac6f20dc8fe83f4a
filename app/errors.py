"""Error pages (HTML) and problem+json for the API."""

from flask import jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError


def _problem(status: int, title: str, detail: str = "", errors=None):
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    return resp


def problem(status: int, title: str, detail: str = "", errors=None):
    """An RFC 9457 problem response."""
    return _problem(status, title, detail, errors)


def init_app(app):
    """Register error handlers: problem+json under /api, HTML pages elsewhere."""
    titles = {
        400: "Bad request",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Payload too large",
        422: "Unprocessable content",
        429: "Too many requests",
        500: "Internal server error",
    }

    def handler(status):
        def handle(exc):
            if request.path.startswith("/api/"):
                detail = getattr(exc, "description", "") or ""
                return _problem(status, titles[status], detail if status != 500 else "")
            messages = {
                400: _("That request could not be understood."),
                403: _("You do not have access to this page."),
                404: _("We could not find that page."),
                405: _("That action is not allowed here."),
                413: _("That file is too large."),
                422: _("Please check the form."),
                429: _("Too many attempts. Please wait a moment and try again."),
                500: _("Something went wrong on our side. Please try again."),
            }
            return render_template(
                "errors/error.html", status=status, message=messages[status]
            ), status

        return handle

    for status in titles:
        app.register_error_handler(status, handler(status))

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        if request.path.startswith("/api/"):
            return _problem(400, "Bad request", "CSRF token missing or invalid.")
        return (
            render_template(
                "errors/error.html",
                status=400,
                message=_("Your session expired. Please reload the page and try again."),
            ),
            400,
        )
