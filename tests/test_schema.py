"""Migrations produce exactly the models."""

from peewee import SqliteDatabase
from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

from app import migrate
from app.models import ALL_MODELS, Decision, FollowUp, FollowUpReason, Occurrence, Plan
from tests.factories import make_customer, make_store, utc


def test_migrations_produce_exactly_the_models(schema):
    with schema.connection_context():
        diff = diff_models(schema, ALL_MODELS)
    assert not diff, f"models and migrations differ:\n{diff}"


def test_init_is_safe_to_run_again(schema):
    assert migrate.upgrade() == []
    assert migrate.pending() == []


def test_reasons_keep_their_plan_and_occurrence_across_migration_0016_and_back(tmp_path):
    """0016 drops the reason's copies of its decision's plan and occurrence (SQLite rebuilds
    the table): the rows stay, read through the decision, and going back fills the copies."""
    database = SqliteDatabase(str(tmp_path / "m.db"), pragmas={"foreign_keys": 1})
    runner = Runner(database, str(migrate.MIGRATIONS))
    with database.bind_ctx(ALL_MODELS), database.connection_context():
        runner.up(target="0015_import_tags_created")
        store = make_store()
        customer = make_customer(store)
        plan = Plan.create(
            store=store, name="Card expiry", template="card_expiry", type="recurring"
        )
        occ = Occurrence.create(plan=plan, key="2026-06-01", scheduled_for=utc(2026, 6, 1, 2))
        decision = Decision.create(
            plan=plan, occurrence=occ, customer=customer, dedupe_key="card:1", outcome="followup"
        )
        followup = FollowUp.create(
            store=store, customer=customer, plan=plan, occurrence=occ, due_at=utc(2026, 6, 1, 10)
        )
        database.execute_sql(
            "INSERT INTO follow_up_reason (followup_id, plan_id, occurrence_id, decision_id,"
            " text, script, created_at) VALUES (?, ?, ?, ?, 'Card expiry', 'Hi', ?)",
            (followup.id, plan.id, occ.id, decision.id, "2026-06-01 02:00:00"),
        )
        assert runner.up(target="0016_reason_plan_from_decision") == [
            "0016_reason_plan_from_decision"
        ]
        with database.bind_ctx([FollowUpReason]):
            (reason,) = FollowUpReason.with_plans()
        assert (reason.followup_id, reason.plan_id, reason.occurrence_id) == (
            followup.id,
            plan.id,
            occ.id,
        )
        assert (reason.plan_name, reason.text, reason.script) == (
            "Card expiry",
            "Card expiry",
            "Hi",
        )
        assert runner.down() == ["0016_reason_plan_from_decision"]
        rows = database.execute_sql(
            "SELECT followup_id, plan_id, occurrence_id, decision_id FROM follow_up_reason"
        ).fetchall()
        assert rows == [(followup.id, plan.id, occ.id, decision.id)]
