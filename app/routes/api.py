"""JSON API v1: bearer tokens per store, problem+json errors, pagination, rate limits."""

import base64
import binascii
import json
import logging
import os
import re
import time
import uuid
from functools import wraps
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app import clock, csrf
from app.errors import problem
from app.services import openapi as spec
from app.services import ratelimit, tokens
from app.services.validation import ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
log = logging.getLogger(__name__)

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TOKEN_TEXT = re.compile(r"rv_[A-Za-z0-9_\-]{8,}")
_PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
wall_clock = time.time  # rate limits count real requests, even while REVISIT_NOW is frozen


class ApiError(Exception):
    """A problem+json answer raised from anywhere inside a view."""

    def __init__(self, status: int, title: str, detail: str = "", errors=None):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


class RedactTokens(logging.Filter):
    """Masks anything shaped like an API token before a log line is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "rv_" in message:
            record.msg = _TOKEN_TEXT.sub("rv_[redacted]", message)
            record.args = None
        return True


@bp.record_once
def _protect_logs(state) -> None:
    """Token text never reaches a log handler (werkzeug's access log included)."""
    redact = RedactTokens()
    for logger in (
        logging.getLogger(),
        logging.getLogger("werkzeug"),
        logging.getLogger("waitress"),
    ):
        targets = [logger, *logger.handlers]
        for target in targets:
            if not any(isinstance(f, RedactTokens) for f in target.filters):
                target.addFilter(redact)


@bp.before_app_request
def _request_id() -> None:
    """Keep a sane incoming X-Request-Id, else make one."""
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


@bp.after_app_request
def _stamp_request_id(response):
    """Every response, API and web, carries the request id."""
    response.headers["X-Request-Id"] = getattr(g, "request_id", None) or uuid.uuid4().hex
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return problem(exc.status, exc.title, exc.detail, exc.errors)


@bp.errorhandler(ValidationError)
def _validation_error(exc: ValidationError):
    return problem(422, "Unprocessable content", "Some fields are not valid.", exc.errors)


def _authenticate():
    """The token row of the request's bearer token, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return tokens.find_active(raw.strip())


def rate_limit_per_minute() -> int:
    """Requests a token may make per minute (REVISIT_API_RATE, default 600)."""
    return ratelimit.parse_rate(
        current_app.config.get("REVISIT_API_RATE") or os.environ.get("REVISIT_API_RATE")
    )


def token_required(view):
    """Authenticate a bearer token and apply its rate limit; g.store is its store."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        token = _authenticate()
        if token is None:
            resp = problem(401, "Unauthorized", "A valid bearer token is required.")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="revisit"'
            return resp
        verdict = ratelimit.hit(
            f"token:{token.id}",
            rate_limit_per_minute(),
            wall_clock(),
            current_app.config.get("REDIS_URL"),
        )
        if not verdict.allowed:
            resp = problem(429, "Too many requests", "The rate limit of this token is exceeded.")
            resp.headers["Retry-After"] = str(verdict.retry_after)
            return resp
        g.api_token = token
        g.store = token.store
        tokens.touch(token, clock.now())
        resp = current_app.make_response(view(*args, **kwargs))
        resp.headers["X-RateLimit-Limit"] = str(verdict.limit)
        resp.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        return resp

    return wrapped


MAX_ID = 2_147_483_647


def _ids_in_range(view, params: dict[str, str]):
    """An id no database column can hold names nothing: 404 before any query."""
    ids = [name for name, conv in params.items() if conv == "int"]
    if not ids:
        return view

    @wraps(view)
    def checked(*args, **kwargs):
        if any(kwargs.get(name, 0) > MAX_ID for name in ids):
            abort(404)
        return view(*args, **kwargs)

    return checked


def operation(rule: str, method: str, **doc):
    """Register a view under /api/v1 and describe it in the OpenAPI document."""

    def decorate(view):
        public = doc.pop("public", False)
        params = {name: conv or "string" for conv, name in _PATH_PARAM.findall(rule)}
        spec.register(
            _PATH_PARAM.sub(r"{\2}", rule), method, path_params=params, public=public, **doc
        )
        func = view if public else token_required(_ids_in_range(view, params))
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=func, methods=[method])
        return view

    return decorate


def json_body() -> dict:
    """The request's JSON object; 400 for a wrong content type or malformed JSON."""
    if not request.is_json:
        raise ApiError(
            400, "Bad request", "The body must be JSON (Content-Type: application/json)."
        )
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Bad request", f"The body is not valid JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "Bad request", "The body must be a JSON object.")
    return body


def optional_json_body() -> dict | None:
    """The JSON object of the request, or None when the body is empty."""
    if not request.get_data(cache=True).strip():
        return None
    return json_body()


def query_int(name: str, minimum: int = 1) -> int | None:
    """A whole-number query parameter, or None; 422 naming it when it is not one."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"'{raw[:40]}' is not a whole number", name) from None
    if value < minimum or value > 2_000_000_000:
        raise ValidationError(f"must be a whole number of at least {minimum}", name)
    return value


def query_choice(name: str, choices) -> str | None:
    """A query parameter that must be one of `choices`, or None."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ValidationError(f"must be one of: {', '.join(choices)}", name)
    return raw


def query_datetime(name: str):
    """An aware datetime query parameter (no offset = the store's timezone), or None."""
    from app.services.validation import parse_datetime

    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_datetime(raw, g.store.timezone)
    except ValueError as exc:
        raise ValidationError(str(exc), name) from None


def _decode_cursor(raw: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        after = int(data["after"])
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("is not a cursor this API gave out", "cursor") from None
    return after


def _encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def paginate(query, id_field, serialize) -> dict:
    """One page of a query in id order: {"items", "next"?} with `limit` and an opaque cursor."""
    limit = query_int("limit") or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise ValidationError(f"must be at most {MAX_LIMIT}", "limit")
    cursor = request.args.get("cursor")
    if cursor:
        query = query.where(id_field > _decode_cursor(cursor))
    rows = list(query.order_by(id_field).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    body = {"items": serialize(rows)}
    if more:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        args.append(("cursor", _encode_cursor(rows[-1].id)))
        body["next"] = f"{request.path}?{urlencode(args)}"
    return body


def created(payload: dict, is_new: bool):
    """201 for something new, 200 for an update or a replay."""
    return jsonify(payload), 201 if is_new else 200


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Unhandled HTTP errors under /api answer problem+json (the rest keep their pages)."""
    if request.path.startswith("/api/"):
        return problem(exc.code or 500, exc.name, exc.description or "")
    return exc


@operation(
    "/openapi.json",
    "GET",
    summary="This OpenAPI document",
    public=True,
    response={"type": "object"},
    tag="meta",
)
def openapi():
    """The OpenAPI 3 document of this API."""
    return jsonify(spec.document())


@operation(
    "/ping",
    "GET",
    summary="Check a token",
    response={
        "type": "object",
        "required": ["store", "name"],
        "properties": {"store": {"type": "string"}, "name": {"type": "string"}},
    },
    tag="meta",
)
def ping():
    """Check a token: answers with the token's store."""
    return jsonify(store=g.store.key, name=g.store.name)


from app.routes import (  # noqa: E402,F401  (the API's other operations register on bp)
    api_cards,
    api_customers,
    api_events,
    api_followups,
    api_plans,
    api_reports,
)
