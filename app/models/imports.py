"""Import batches: what each committed batch of an import job did, written in its transaction."""

import peewee as pw

from app.db import BaseModel, JSONField, UTCDateTimeField
from app.models.org import Store


class ImportBatch(BaseModel):
    """One committed batch of rows [first_row, end_row) of an import job, with its outcome."""

    store = pw.ForeignKeyField(Store, on_delete="CASCADE")
    job = pw.CharField(max_length=40)
    first_row = pw.IntegerField()
    end_row = pw.IntegerField()
    counts = JSONField()
    landed = JSONField()
    errors = JSONField()
    carry = JSONField()
    at = UTCDateTimeField()
    tags_created = JSONField(default=dict)

    class Meta:
        indexes = ((("job", "first_row"), True),)
