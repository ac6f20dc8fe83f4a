"""The huey instance: RedisHuey when REDIS_URL is set, else SQLite-backed."""

import functools
import os

from huey import RedisHuey, SqliteHuey

from app import config
from app.db import db


def build_huey():
    """Build huey from the environment."""
    immediate = os.environ.get("REVISIT_HUEY_IMMEDIATE") == "1"
    if os.environ.get("REDIS_URL"):
        return RedisHuey("revisit", url=os.environ["REDIS_URL"], immediate=immediate, utc=True)
    return SqliteHuey(
        "revisit", filename=str(config.instance_dir() / "huey.db"), immediate=immediate, utc=True
    )


huey = build_huey()


def db_job(fn):
    """Open a database connection for a job only if none is open; close only what it opened."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        opened = db.connect(reuse_if_open=True)
        try:
            return fn(*args, **kwargs)
        finally:
            if opened and not db.is_closed():
                db.close()

    return wrapped
