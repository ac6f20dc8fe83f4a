"""Initial schema: every table of the glossary."""
# Generated from a schema diff on 2026-11-24 04:04.
from peewee import *
from app.db import JSONField
from app.db import MoneyField
from app.db import UTCDateTimeField


def up(migrator, db):
    class Store(Model):
        key = CharField(unique=True, max_length=64)
        name = CharField(max_length=200)
        timezone = CharField(max_length=64, default='UTC')
        region = CharField(max_length=2, default='MY')
        currency = CharField(max_length=3, default='MYR')
        locale = CharField(max_length=16, default='en')
        member_day = SmallIntegerField(null=True)
        quiet_start = CharField(max_length=5, default='21:00')
        quiet_end = CharField(max_length=5, default='09:00')
        settings = JSONField(default=dict)
        active = BooleanField(default=True)
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'store'
    db.create_tables([Store])

    class Staff(Model):
        email = CharField(unique=True, max_length=254)
        name = CharField(max_length=200)
        password_hash = CharField()
        role = CharField(max_length=16, default='employee')
        active = BooleanField(default=True)
        locale = CharField(null=True, max_length=16)
        phone = CharField(null=True, max_length=20)
        password_changed_at = UTCDateTimeField()
        last_login_at = UTCDateTimeField(null=True)
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'staff'
    db.create_tables([Staff])

    class ApiToken(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        name = CharField(max_length=100, default='')
        prefix = CharField(max_length=12)
        token_hash = CharField(unique=True, max_length=64)
        created_at = UTCDateTimeField()
        created_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        last_used_at = UTCDateTimeField(null=True)
        revoked_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'api_token'
    db.create_tables([ApiToken])

    class AuditLog(Model):
        at = UTCDateTimeField()
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        store = ForeignKeyField(Store, null=True, on_delete='SET NULL')
        action = CharField(max_length=64)
        object_type = CharField(max_length=40, default='')
        object_id = CharField(max_length=64, default='')
        detail = JSONField(null=True)
        class Meta:
            database = db
            table_name = 'audit_log'
            indexes = ((('store', 'at'), False), (('object_type', 'object_id'), False))
    db.create_tables([AuditLog])

    class Customer(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        external_id = CharField(null=True, max_length=100)
        name = CharField(max_length=200)
        phone = CharField(null=True, max_length=20)
        email = CharField(null=True, max_length=254)
        line_id = CharField(null=True, max_length=100)
        gender = CharField(null=True, max_length=8)
        birthday = DateField(null=True)
        birthday_md = SmallIntegerField(null=True)
        source = CharField(null=True, max_length=60)
        level = CharField(null=True, max_length=40)
        locale = CharField(null=True, max_length=16)
        assigned_staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        notes = TextField(default='')
        joined_at = UTCDateTimeField()
        first_visit_at = UTCDateTimeField(null=True)
        last_visit_at = UTCDateTimeField(null=True)
        visit_count = IntegerField(default=0)
        total_spend = MoneyField(max_digits=14, decimal_places=2, default=0)
        points = IntegerField(default=0)
        phone_flagged_at = UTCDateTimeField(null=True)
        portal_secret = CharField(null=True, max_length=32)
        created_at = UTCDateTimeField()
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'customer'
            indexes = ((('store', 'phone'), True), (('store', 'external_id'), True), (('store', 'last_visit_at'), False), (('store', 'birthday_md'), False), (('store', 'joined_at'), False), (('store', 'gender'), False), (('store', 'name'), False), (('assigned_staff',), False))
    db.create_tables([Customer])

    class CardProduct(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        sku = CharField(max_length=64)
        name = CharField(max_length=200)
        kind = CharField(max_length=16)
        price = MoneyField(null=True, max_digits=14, decimal_places=2)
        uses = IntegerField(null=True)
        value = MoneyField(null=True, max_digits=14, decimal_places=2)
        valid_days = IntegerField(null=True)
        active = BooleanField(default=True)
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'card_product'
            indexes = ((('store', 'sku'), True),)
    db.create_tables([CardProduct])

    class CustomerCard(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        product = ForeignKeyField(CardProduct, on_delete='RESTRICT')
        external_id = CharField(null=True, max_length=100)
        balance = MoneyField(null=True, max_digits=14, decimal_places=2)
        remaining_uses = IntegerField(null=True)
        expires_on = DateField(null=True)
        status = CharField(max_length=12, default='active')
        issued_at = UTCDateTimeField()
        last_used_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'customer_card'
            indexes = ((('store', 'external_id'), True), (('customer', 'status'), False), (('store', 'expires_on'), False), (('product',), False), (('store', 'balance'), False), (('store', 'remaining_uses'), False))
    db.create_tables([CustomerCard])

    class Event(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        external_id = CharField(max_length=100)
        type = CharField(max_length=24)
        occurred_at = UTCDateTimeField()
        amount = MoneyField(null=True, max_digits=14, decimal_places=2)
        items = JSONField(null=True)
        card = ForeignKeyField(CustomerCard, null=True, on_delete='SET NULL')
        card_uses = IntegerField(null=True)
        card_amount = MoneyField(null=True, max_digits=14, decimal_places=2)
        appointment_at = UTCDateTimeField(null=True)
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        source = CharField(max_length=16, default='api')
        triggers_plans = BooleanField(default=True)
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'event'
            indexes = ((('store', 'external_id'), True), (('customer', 'occurred_at'), False), (('store', 'type', 'occurred_at'), False))
    db.create_tables([Event])

    class CardLedger(Model):
        card = ForeignKeyField(CustomerCard, on_delete='CASCADE')
        event = ForeignKeyField(Event, null=True, on_delete='SET NULL')
        kind = CharField(max_length=16)
        delta_balance = MoneyField(max_digits=14, decimal_places=2, default=0)
        delta_uses = IntegerField(default=0)
        balance_after = MoneyField(null=True, max_digits=14, decimal_places=2)
        uses_after = IntegerField(null=True)
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        note = CharField(max_length=300, default='')
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'card_ledger'
            indexes = ((('card', 'at'), False),)
    db.create_tables([CardLedger])

    class ChannelSetting(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        channel = CharField(max_length=16)
        enabled = BooleanField(default=False)
        config = JSONField(default=dict)
        secret = TextField(default='')
        per_second = SmallIntegerField(default=3)
        daily_quota = IntegerField(null=True)
        price = DecimalField(decimal_places=4, default=0)
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'channel_setting'
            indexes = ((('store', 'channel'), True),)
    db.create_tables([ChannelSetting])

    class Consent(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        channel = CharField(max_length=16)
        granted = BooleanField()
        source = CharField(max_length=40, default='')
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'consent'
            indexes = ((('customer', 'channel'), True), (('channel', 'granted'), False))
    db.create_tables([Consent])

    class ConsentChange(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        channel = CharField(max_length=16)
        granted = BooleanField()
        source = CharField(max_length=40, default='')
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'consent_change'
    db.create_tables([ConsentChange])

    class Plan(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        name = CharField(max_length=200)
        template = CharField(null=True, max_length=40)
        type = CharField(max_length=12)
        status = CharField(max_length=10, default='draft')
        version = IntegerField(default=1)
        params = JSONField(default=dict)
        schedule = JSONField(null=True)
        trigger = JSONField(null=True)
        audience = JSONField(null=True)
        action = JSONField(default=dict)
        steps = JSONField(null=True)
        backfill = BooleanField(default=True)
        holdout_percent = DecimalField(max_digits=5, decimal_places=2, default=0)
        priority = SmallIntegerField(default=50)
        window_days = SmallIntegerField(default=30)
        next_run_at = UTCDateTimeField(null=True)
        last_run_at = UTCDateTimeField(null=True)
        activated_at = UTCDateTimeField(null=True)
        created_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        created_at = UTCDateTimeField()
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'plan'
            indexes = ((('status', 'next_run_at'), False), (('store', 'status'), False))
    db.create_tables([Plan])

    class Occurrence(Model):
        plan = ForeignKeyField(Plan, on_delete='CASCADE')
        version = IntegerField(default=1)
        key = CharField(max_length=80)
        step = SmallIntegerField(default=0)
        scheduled_for = UTCDateTimeField()
        status = CharField(max_length=10, default='pending')
        event = ForeignKeyField(Event, null=True, on_delete='CASCADE')
        started_at = UTCDateTimeField(null=True)
        finished_at = UTCDateTimeField(null=True)
        created_count = IntegerField(default=0)
        detail = JSONField(null=True)
        class Meta:
            database = db
            table_name = 'occurrence'
            indexes = ((('plan', 'key', 'step'), True), (('status', 'scheduled_for'), False))
    db.create_tables([Occurrence])

    class FollowUp(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        plan = ForeignKeyField(Plan, null=True, on_delete='SET NULL')
        occurrence = ForeignKeyField(Occurrence, null=True, on_delete='SET NULL')
        assignee = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        assigned_by_rule = CharField(max_length=20, default='')
        status = CharField(max_length=10, default='open')
        open_customer = IntegerField(unique=True, null=True)
        due_at = UTCDateTimeField()
        snoozed_until = UTCDateTimeField(null=True)
        script = TextField(default='')
        variant = CharField(max_length=2, default='')
        outcome = CharField(null=True, max_length=16)
        attempts = SmallIntegerField(default=0)
        note = TextField(default='')
        withdrawn_reason = CharField(max_length=200, default='')
        parent = ForeignKeyField('self', null=True, on_delete='SET NULL')
        created_at = UTCDateTimeField()
        completed_at = UTCDateTimeField(null=True)
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'follow_up'
            indexes = ((('assignee', 'status', 'due_at'), False), (('store', 'status', 'due_at'), False), (('plan', 'status'), False), (('customer', 'created_at'), False))
    db.create_tables([FollowUp])

    class ContactLog(Model):
        followup = ForeignKeyField(FollowUp, null=True, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        channel = CharField(max_length=16, default='phone')
        outcome = CharField(max_length=16)
        note = TextField(default='')
        next_at = UTCDateTimeField(null=True)
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'contact_log'
            indexes = ((('customer', 'at'), False), (('staff', 'at'), False))
    db.create_tables([ContactLog])

    class CustomerAttribute(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        key = CharField(max_length=60)
        value = CharField(max_length=500)
        class Meta:
            database = db
            table_name = 'customer_attribute'
            indexes = ((('customer', 'key'), True), (('key', 'value'), False))
    db.create_tables([CustomerAttribute])

    class Tag(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        name = CharField(max_length=60)
        dimension = CharField(max_length=60, default='')
        colour = CharField(max_length=7, default='#6b7280')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'tag'
            indexes = ((('store', 'name'), True),)
    db.create_tables([Tag])

    class CustomerTag(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        tag = ForeignKeyField(Tag, on_delete='CASCADE')
        source = CharField(max_length=20, default='manual')
        added_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'customer_tag'
            indexes = ((('customer', 'tag'), True), (('tag',), False))
    db.create_tables([CustomerTag])

    class Decision(Model):
        plan = ForeignKeyField(Plan, on_delete='CASCADE')
        occurrence = ForeignKeyField(Occurrence, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        step = SmallIntegerField(default=0)
        dedupe_key = CharField(max_length=80)
        outcome = CharField(max_length=12)
        variant = CharField(max_length=2, default='')
        branch = SmallIntegerField(null=True)
        reason = CharField(max_length=300, default='')
        defer_until = UTCDateTimeField(null=True)
        created_at = UTCDateTimeField()
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'decision'
            indexes = ((('plan', 'step', 'customer', 'dedupe_key'), True), (('occurrence', 'outcome'), False), (('customer', 'created_at'), False), (('outcome', 'defer_until'), False))
    db.create_tables([Decision])

    class Enrollment(Model):
        plan = ForeignKeyField(Plan, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        key = CharField(max_length=80)
        step = SmallIntegerField(default=0)
        status = CharField(max_length=10, default='active')
        started_at = UTCDateTimeField()
        next_step_at = UTCDateTimeField(null=True)
        updated_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'enrollment'
            indexes = ((('plan', 'customer', 'key'), True), (('status', 'next_step_at'), False))
    db.create_tables([Enrollment])

    class EventItem(Model):
        event = ForeignKeyField(Event, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        sku = CharField(max_length=64)
        name = CharField(max_length=200, default='')
        quantity = IntegerField(default=1)
        price = MoneyField(null=True, max_digits=14, decimal_places=2)
        class Meta:
            database = db
            table_name = 'event_item'
            indexes = ((('customer', 'sku'), False), (('sku',), False))
    db.create_tables([EventItem])

    class FollowUpReason(Model):
        followup = ForeignKeyField(FollowUp, on_delete='CASCADE')
        plan = ForeignKeyField(Plan, null=True, on_delete='SET NULL')
        occurrence = ForeignKeyField(Occurrence, null=True, on_delete='SET NULL')
        decision = ForeignKeyField(Decision, unique=True, null=True, on_delete='SET NULL')
        text = CharField(max_length=300, default='')
        script = TextField(default='')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'follow_up_reason'
            indexes = ((('followup',), False),)
    db.create_tables([FollowUpReason])

    class LoginEvent(Model):
        email = CharField(max_length=254)
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        ip = CharField(max_length=64, default='')
        user_agent = CharField(max_length=300, default='')
        success = BooleanField()
        reason = CharField(max_length=40, default='')
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'login_event'
            indexes = ((('email', 'at'), False), (('ip', 'at'), False))
    db.create_tables([LoginEvent])

    class Message(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        plan = ForeignKeyField(Plan, null=True, on_delete='SET NULL')
        occurrence = ForeignKeyField(Occurrence, null=True, on_delete='SET NULL')
        decision = ForeignKeyField(Decision, unique=True, null=True, on_delete='SET NULL')
        channel = CharField(max_length=16)
        to_address = CharField(max_length=254, default='')
        subject = CharField(max_length=200, default='')
        body = TextField()
        variant = CharField(max_length=2, default='')
        status = CharField(max_length=12, default='queued')
        idempotency_key = CharField(unique=True, max_length=64)
        provider_message_id = CharField(null=True, max_length=200)
        attempts = SmallIntegerField(default=0)
        next_attempt_at = UTCDateTimeField(null=True)
        error = CharField(max_length=500, default='')
        created_at = UTCDateTimeField()
        sending_at = UTCDateTimeField(null=True)
        sent_at = UTCDateTimeField(null=True)
        delivered_at = UTCDateTimeField(null=True)
        read_at = UTCDateTimeField(null=True)
        failed_at = UTCDateTimeField(null=True)
        closed_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'message'
            indexes = ((('status', 'next_attempt_at'), False), (('store', 'channel', 'status'), False), (('customer', 'created_at'), False), (('plan', 'status'), False), (('provider_message_id',), False))
    db.create_tables([Message])

    class MessageStatusChange(Model):
        message = ForeignKeyField(Message, on_delete='CASCADE')
        status = CharField(max_length=12)
        detail = JSONField(null=True)
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'message_status_change'
            indexes = ((('message', 'at'), False),)
    db.create_tables([MessageStatusChange])

    class Notice(Model):
        staff = ForeignKeyField(Staff, on_delete='CASCADE')
        store = ForeignKeyField(Store, null=True, on_delete='CASCADE')
        sender = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        text = TextField()
        url = CharField(max_length=300, default='')
        created_at = UTCDateTimeField()
        read_at = UTCDateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'notice'
            indexes = ((('staff', 'read_at'), False),)
    db.create_tables([Notice])

    class PlanVersion(Model):
        plan = ForeignKeyField(Plan, on_delete='CASCADE')
        version = IntegerField()
        snapshot = JSONField()
        created_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'plan_version'
            indexes = ((('plan', 'version'), True),)
    db.create_tables([PlanVersion])

    class PointsEntry(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        delta = IntegerField()
        kind = CharField(max_length=16)
        event = ForeignKeyField(Event, null=True, on_delete='SET NULL')
        dedupe_key = CharField(null=True, max_length=80)
        reason = CharField(max_length=200, default='')
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        expires_at = UTCDateTimeField(null=True)
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'points_entry'
            indexes = ((('customer', 'dedupe_key'), True), (('customer', 'at'), False))
    db.create_tables([PointsEntry])

    class SchedulerLock(Model):
        name = CharField(primary_key=True, max_length=60)
        holder = CharField(max_length=80)
        expires_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'scheduler_lock'
    db.create_tables([SchedulerLock])

    class Segment(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        key = CharField(max_length=60)
        name = CharField(max_length=120)
        kind = CharField(max_length=10, default='custom')
        audience = JSONField(null=True)
        created_by = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'segment'
            indexes = ((('store', 'key'), True),)
    db.create_tables([Segment])

    class StaffLeave(Model):
        staff = ForeignKeyField(Staff, on_delete='CASCADE')
        starts_on = DateField()
        ends_on = DateField()
        note = CharField(max_length=200, default='')
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'staff_leave'
            indexes = ((('staff', 'starts_on'), False),)
    db.create_tables([StaffLeave])

    class StaffSession(Model):
        token_hash = CharField(unique=True, max_length=64)
        staff = ForeignKeyField(Staff, on_delete='CASCADE')
        created_at = UTCDateTimeField()
        last_seen_at = UTCDateTimeField()
        revoked_at = UTCDateTimeField(null=True)
        ip = CharField(max_length=64, default='')
        user_agent = CharField(max_length=300, default='')
        class Meta:
            database = db
            table_name = 'staff_session'
    db.create_tables([StaffSession])

    class StaffStore(Model):
        staff = ForeignKeyField(Staff, on_delete='CASCADE')
        store = ForeignKeyField(Store, on_delete='CASCADE')
        class Meta:
            database = db
            table_name = 'staff_store'
            indexes = ((('staff', 'store'), True), (('store',), False))
    db.create_tables([StaffStore])

    class TagRule(Model):
        store = ForeignKeyField(Store, on_delete='CASCADE')
        tag = ForeignKeyField(Tag, on_delete='CASCADE')
        action = CharField(max_length=8, default='add')
        audience = JSONField()
        active = BooleanField(default=True)
        last_run_at = UTCDateTimeField(null=True)
        created_at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'tag_rule'
    db.create_tables([TagRule])

    class Visit(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        store = ForeignKeyField(Store, on_delete='CASCADE')
        day = DateField()
        first_at = UTCDateTimeField()
        amount = MoneyField(max_digits=14, decimal_places=2, default=0)
        staff = ForeignKeyField(Staff, null=True, on_delete='SET NULL')
        class Meta:
            database = db
            table_name = 'visit'
            indexes = ((('customer', 'day'), True), (('store', 'day'), False))
    db.create_tables([Visit])

    class WhyLog(Model):
        customer = ForeignKeyField(Customer, on_delete='CASCADE')
        plan = ForeignKeyField(Plan, null=True, on_delete='CASCADE')
        occurrence = ForeignKeyField(Occurrence, null=True, on_delete='CASCADE')
        kind = CharField(max_length=16)
        detail = CharField(max_length=300, default='')
        at = UTCDateTimeField()
        class Meta:
            database = db
            table_name = 'why_log'
            indexes = ((('customer', 'at'), False),)
    db.create_tables([WhyLog])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('why_log'))
    migrator.migrate(migrator.drop_table('visit'))
    migrator.migrate(migrator.drop_table('tag_rule'))
    migrator.migrate(migrator.drop_table('staff_store'))
    migrator.migrate(migrator.drop_table('staff_session'))
    migrator.migrate(migrator.drop_table('staff_leave'))
    migrator.migrate(migrator.drop_table('segment'))
    migrator.migrate(migrator.drop_table('scheduler_lock'))
    migrator.migrate(migrator.drop_table('points_entry'))
    migrator.migrate(migrator.drop_table('plan_version'))
    migrator.migrate(migrator.drop_table('notice'))
    migrator.migrate(migrator.drop_table('message_status_change'))
    migrator.migrate(migrator.drop_table('message'))
    migrator.migrate(migrator.drop_table('login_event'))
    migrator.migrate(migrator.drop_table('follow_up_reason'))
    migrator.migrate(migrator.drop_table('event_item'))
    migrator.migrate(migrator.drop_table('enrollment'))
    migrator.migrate(migrator.drop_table('decision'))
    migrator.migrate(migrator.drop_table('customer_tag'))
    migrator.migrate(migrator.drop_table('tag'))
    migrator.migrate(migrator.drop_table('customer_attribute'))
    migrator.migrate(migrator.drop_table('contact_log'))
    migrator.migrate(migrator.drop_table('follow_up'))
    migrator.migrate(migrator.drop_table('occurrence'))
    migrator.migrate(migrator.drop_table('plan'))
    migrator.migrate(migrator.drop_table('consent_change'))
    migrator.migrate(migrator.drop_table('consent'))
    migrator.migrate(migrator.drop_table('channel_setting'))
    migrator.migrate(migrator.drop_table('card_ledger'))
    migrator.migrate(migrator.drop_table('event'))
    migrator.migrate(migrator.drop_table('customer_card'))
    migrator.migrate(migrator.drop_table('card_product'))
    migrator.migrate(migrator.drop_table('customer'))
    migrator.migrate(migrator.drop_table('audit_log'))
    migrator.migrate(migrator.drop_table('api_token'))
    migrator.migrate(migrator.drop_table('staff'))
    migrator.migrate(migrator.drop_table('store'))
