"""/healthz: is the database reachable and is the queue reachable."""

from flask import Blueprint, jsonify

from app.db import db

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    """Check the database and the job queue; 503 when either is down."""
    from app.tasks.queue import huey

    checks = {}
    try:
        db.execute_sql("SELECT 1").fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        huey.pending_count()
        checks["queue"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["queue"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "error", checks=checks), (200 if healthy else 503)


healthz.checks_database = True
