"""A follow-up's reason row is the why-log's "created" entry (the timeline reads it from
follow_up_reason), so the engine no longer writes a why_log row of its own for it. The rows
written before are removed, or each would show twice on the client's timeline."""
from peewee import *


def up(migrator, db):
    db.execute_sql(
        "DELETE FROM why_log WHERE kind = 'created' AND detail LIKE " + db.param,
        ("follow-up: %",),
    )


def down(migrator, db):
    db.execute_sql(
        "INSERT INTO why_log (customer_id, plan_id, occurrence_id, kind, detail, at)"
        " SELECT f.customer_id, r.plan_id, r.occurrence_id, 'created',"
        " 'follow-up: ' || COALESCE(p.name, ''), r.created_at"
        " FROM follow_up_reason r JOIN follow_up f ON f.id = r.followup_id"
        " LEFT JOIN plan p ON p.id = r.plan_id"
    )
