"""Small helpers for answering htmx and plain requests alike."""

from flask import make_response, render_template, request
from flask import redirect as flask_redirect


def is_partial() -> bool:
    """True for an htmx request that wants a fragment (not a boosted navigation)."""
    return (
        request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    )


def render(page_template: str, fragment_template: str, status: int = 200, **ctx):
    """Render the fragment for htmx, the whole page otherwise; always Vary on HX-Request."""
    template = fragment_template if is_partial() else page_template
    resp = make_response(render_template(template, **ctx), status)
    resp.headers["Vary"] = "HX-Request"
    return resp


def redirect(url: str):
    """Redirect: HX-Redirect for htmx, 303 See Other otherwise."""
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = url
        return resp
    return flask_redirect(url, code=303)


def trigger(resp, event: str):
    """Ask htmx to fire an event on the page (other parts listen and refresh)."""
    existing = resp.headers.get("HX-Trigger")
    resp.headers["HX-Trigger"] = f"{existing}, {event}" if existing else event
    return resp
