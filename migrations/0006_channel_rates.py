"""Channel rates per second or per minute (blank = the channel's default); sends indexed by time."""

from peewee import CharField, IntegerField, SmallIntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("channel_setting", "rate_limit", IntegerField(null=True)),
        migrator.add_column(
            "channel_setting", "rate_unit", CharField(max_length=8, default="second")
        ),
    )
    # 3 was the column default, not a choice: those rows take the channel's default now.
    db.execute_sql("UPDATE channel_setting SET rate_limit = per_second WHERE per_second <> 3")
    migrator.migrate(
        migrator.drop_column("channel_setting", "per_second"),
        migrator.add_index("message", ("store_id", "channel", "sending_at")),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("message", "message_store_id_channel_sending_at"),
        migrator.add_column("channel_setting", "per_second", SmallIntegerField(default=3)),
    )
    db.execute_sql(
        "UPDATE channel_setting SET per_second = rate_limit "
        "WHERE rate_limit IS NOT NULL AND rate_unit = 'second' AND rate_limit <= 32767"
    )
    migrator.migrate(
        migrator.drop_column("channel_setting", "rate_unit"),
        migrator.drop_column("channel_setting", "rate_limit"),
    )
