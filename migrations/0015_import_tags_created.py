"""Import batches keep the tags the import created (name → how many clients got each in the batch)."""

from app.db import JSONField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("import_batch", "tags_created", JSONField(default=dict)),
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("import_batch", "tags_created"))
