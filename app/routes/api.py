"""JSON API v1: bearer tokens per store, problem+json errors."""

import hashlib
from functools import wraps

from flask import Blueprint, g, jsonify, request

from app import clock, csrf
from app.errors import problem
from app.models import ApiToken, Store

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


def token_required(view):
    """Authenticate a bearer token; g.store is its store."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return problem(401, "Unauthorized", "A bearer token is required.")
        digest = hashlib.sha256(header[7:].strip().encode()).hexdigest()
        token = (
            ApiToken.select(ApiToken, Store)
            .join(Store)
            .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_null())
            .first()
        )
        if token is None:
            return problem(401, "Unauthorized", "The token is not valid.")
        g.api_token = token
        g.store = token.store
        now = clock.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
        return view(*args, **kwargs)

    return wrapped


@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    from app.services import openapi as spec

    return jsonify(spec.document())


@bp.route("/ping")
@token_required
def ping():
    """Check a token: answers with the token's store."""
    return jsonify(store=g.store.key, name=g.store.name)
