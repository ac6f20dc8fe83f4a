"""Every-N-days plans keep the phase of the day they were switched on. Before this, the first
firing was computed one day early (day N-1 instead of day N, and not on the day itself), so a
plan switched on in the morning would later fire on two days running. Active interval plans
get their next firing recomputed, strictly after now, with the corrected rule."""
import json
from datetime import UTC, date, datetime

from peewee import *

from app.db import UTCDateTimeField


def up(migrator, db):
    from app.services import schedule

    now = datetime.now(UTC)
    stamp = UTCDateTimeField()
    rows = db.execute_sql(
        "SELECT p.id, p.schedule, s.timezone FROM plan p JOIN store s ON s.id = p.store_id"
        " WHERE p.type = 'recurring' AND p.status = 'active' AND p.schedule IS NOT NULL"
    ).fetchall()
    for plan_id, raw, tz in rows:
        rule = json.loads(raw) if raw else {}
        if 'INTERVAL' not in str(rule.get('rrule', '')) or not rule.get('anchor'):
            continue
        firing = schedule.next_run(
            rule['rrule'],
            rule.get('at', '10:00'),
            tz,
            now,
            anchor=date.fromisoformat(rule['anchor']),
            offset_days=int(rule.get('offset_days', 0)),
        )
        db.execute_sql(
            'UPDATE plan SET next_run_at = %s WHERE id = %s'.replace('%s', db.param),
            (stamp.db_value(firing), plan_id),
        )


def down(migrator, db):
    pass  # the old phase was a bug; nothing to restore
