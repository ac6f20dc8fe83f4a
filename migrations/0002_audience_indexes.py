"""Audience indexes: covering indexes so tag and card conditions are answered from the index."""

CARD_INDEXES = [
    ("store_id", "status", "balance", "customer_id"),
    ("store_id", "status", "remaining_uses", "customer_id"),
    ("store_id", "status", "expires_on", "customer_id"),
]
REPLACED = [("store_id", "balance"), ("store_id", "remaining_uses")]


def _named(db, table, columns):
    """The name of the index on exactly these columns (names differ between creators)."""
    for index in db.get_indexes(table):
        if tuple(index.columns) == tuple(columns):
            return index.name
    return None


def up(migrator, db):
    ops = [migrator.add_index("customer_tag", ("tag_id", "customer_id"))]
    for columns in REPLACED:
        name = _named(db, "customer_card", columns)
        if name:
            ops.append(migrator.drop_index("customer_card", name))
    ops += [migrator.add_index("customer_card", columns) for columns in CARD_INDEXES]
    migrator.migrate(*ops)
    if "sqlite" in type(db).__name__.lower():
        # Statistics for the new indexes, so SQLite's planner weighs them correctly.
        db.execute_sql("ANALYZE customer_tag")
        db.execute_sql("ANALYZE customer_card")


def down(migrator, db):
    ops = [
        migrator.drop_index("customer_tag", _named(db, "customer_tag", ("tag_id", "customer_id")))
    ]
    ops += [
        migrator.drop_index("customer_card", _named(db, "customer_card", columns))
        for columns in CARD_INDEXES
    ]
    ops += [migrator.add_index("customer_card", columns) for columns in REPLACED]
    migrator.migrate(*ops)
