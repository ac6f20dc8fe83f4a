"""Migrations produce exactly the models."""

from playhouse.schema_diff import diff_models

from app import migrate
from app.models import ALL_MODELS


def test_migrations_produce_exactly_the_models(schema):
    with schema.connection_context():
        diff = diff_models(schema, ALL_MODELS)
    assert not diff, f"models and migrations differ:\n{diff}"


def test_init_is_safe_to_run_again(schema):
    assert migrate.upgrade() == []
    assert migrate.pending() == []
