"""Loyalty: the rewards catalogue and the coupons customers redeem."""
from peewee import *
from app.db import UTCDateTimeField


def up(migrator, db):
    class Store(Model):
        class Meta:
            database = db
            table_name = 'store'

    class Staff(Model):
        class Meta:
            database = db
            table_name = 'staff'

    class Customer(Model):
        class Meta:
            database = db
            table_name = 'customer'

    class PointsEntry(Model):
        class Meta:
            database = db
            table_name = 'points_entry'

    class Reward(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        name = CharField(max_length=200)
        points_price = IntegerField(default=200)
        active = BooleanField(default=True)
        stock = IntegerField(null=True)
        description = TextField(default='')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'reward'
            indexes = ((('store', 'active', 'points_price'), False),)
    db.create_tables([Reward])

    class Coupon(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        reward = ForeignKeyField(Reward, on_delete='RESTRICT')
        code = CharField(unique=True, max_length=16)
        points = IntegerField()
        status = CharField(max_length=12, default='active')
        source = CharField(max_length=12, default='counter')
        redeem_entry = ForeignKeyField(PointsEntry, null=True, on_delete='SET NULL')
        issued_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL', backref='+')
        issued_at = UTCDateTimeField()
        expires_at = UTCDateTimeField()
        used_at = UTCDateTimeField(null=True)
        used_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL', backref='+')
        refunded = BooleanField(default=False)
        class Meta:
            database = db
            table_name = 'coupon'
            indexes = ((('customer', 'status'), False), (('store', 'status', 'expires_at'), False))
    db.create_tables([Coupon])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('coupon'))
    migrator.migrate(migrator.drop_table('reward'))
