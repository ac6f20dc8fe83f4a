"""Loyalty points: earning, reversing, expiring, redeeming rewards for coupons, tiers, the portal link."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import peewee as pw
from dateutil.relativedelta import relativedelta
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from app import config
from app.db import db, is_postgres
from app.models import (
    Coupon,
    Customer,
    CustomerCard,
    Event,
    PointsEntry,
    Reward,
    Staff,
    Store,
)
from app.services import customers as customer_service
from app.services.scripts import N_, translate

log = logging.getLogger(__name__)

DEFAULTS = {
    "loyalty.enabled": True,
    "loyalty.signup_bonus": 50,
    "loyalty.points_per_unit": "1",
    "loyalty.earn_types": ["purchase", "service_completed"],
    "loyalty.member_day_multiplier": 2,
    "loyalty.campaigns": [],
    "loyalty.expiry_months": 12,
    "loyalty.coupon_days": 30,
    "loyalty.refund_expired_coupons": False,
    "loyalty.value_per_point": "0.01",
    "loyalty.portal_link_days": 90,
    "loyalty.tiers": [],
}
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
CREDIT_KINDS = ("signup", "earn", "bonus", "adjust", "refund")


class LoyaltyError(ValueError):
    """A loyalty action that cannot be done; `field` names the form field at fault."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def _write_tx():
    """A transaction that takes the write lock at once on SQLite (no lock-upgrade deadlocks)."""
    return db.atomic() if is_postgres() else db.atomic("IMMEDIATE")


def setting(store: Store, name: str):
    """A loyalty setting of the store, else its default."""
    return store.setting(name, DEFAULTS[name])


def _store(store_or_id) -> Store:
    return store_or_id if isinstance(store_or_id, Store) else Store.get_by_id(store_or_id)


def _decimal(value, default: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(default)


def _lot_expiry(store: Store, start: datetime) -> datetime | None:
    """When points credited at `start` expire (None when the store keeps them forever)."""
    months = setting(store, "loyalty.expiry_months")
    if not months:
        return None
    return start + relativedelta(months=int(months))


def _add_entry(
    store_id: int,
    customer_id: int,
    delta: int,
    kind: str,
    now: datetime,
    dedupe_key: str | None = None,
    event_id: int | None = None,
    reason: str = "",
    staff_id: int | None = None,
    expires_at: datetime | None = None,
) -> bool:
    """Append one ledger row (once per dedupe key) and move the cached balance; True if it landed."""
    query = PointsEntry.insert(
        store=store_id,
        customer=customer_id,
        delta=delta,
        kind=kind,
        event=event_id,
        dedupe_key=dedupe_key,
        reason=reason[:200],
        staff=staff_id,
        expires_at=expires_at,
        at=now,
    ).on_conflict_ignore()
    cursor = db.execute(query)
    if cursor.rowcount != 1:
        return False
    if delta:
        Customer.update(points=Customer.points + delta).where(Customer.id == customer_id).execute()
    return True


def balance(customer: Customer) -> int:
    """The balance derived from the ledger (the cache in Customer.points must equal it)."""
    total = (
        PointsEntry.select(pw.fn.COALESCE(pw.fn.SUM(PointsEntry.delta), 0))
        .where(PointsEntry.customer == customer.id)
        .scalar()
    )
    return int(total or 0)


# ---------------------------------------------------------------- earning


def credit_signup(customer: Customer, now: datetime) -> int:
    """Give the store's sign-up bonus once per customer; answers the points credited."""
    store = _store(customer.store_id)
    bonus = int(setting(store, "loyalty.signup_bonus") or 0)
    if not setting(store, "loyalty.enabled") or bonus <= 0:
        return 0
    with _write_tx():
        landed = _add_entry(
            store.id,
            customer.id,
            bonus,
            "signup",
            now,
            dedupe_key="signup",
            reason="Sign-up bonus",
            expires_at=_lot_expiry(store, now),
        )
    return bonus if landed else 0


def credit_signups(store: Store, customer_ids: list[int], now: datetime) -> int:
    """The sign-up bonus for many new customers at once (set-based); answers how many got it."""
    bonus = int(setting(store, "loyalty.signup_bonus") or 0)
    if not setting(store, "loyalty.enabled") or bonus <= 0 or not customer_ids:
        return 0
    expires = _lot_expiry(store, now)
    given = 0
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        with _write_tx():
            # Plain SQL: a 500-value IN list through the query builder costs more than the query.
            marks = ", ".join([db.param] * len(chunk))
            candidates = f'FROM "customer" WHERE "store_id" = {db.param} AND "id" IN ({marks})'
            if is_postgres():
                # Serialise with another bulk credit of the same customers.
                db.execute_sql(f'SELECT "id" {candidates} FOR UPDATE', [store.id, *chunk])
            sql = (
                f'SELECT "id" {candidates} AND "id" NOT IN (SELECT "customer_id" FROM '
                f'"points_entry" WHERE "dedupe_key" = {db.param} AND "customer_id" IN ({marks}))'
            )
            rows = db.execute_sql(sql, [store.id, *chunk, "signup", *chunk]).fetchall()
            new_ids = [row[0] for row in rows]
            if not new_ids:
                continue
            # One prepared statement: building a 500-row INSERT in peewee costs more than it.
            customer_service.bulk_insert(
                PointsEntry,
                [
                    {
                        "store": store.id,
                        "customer": cid,
                        "delta": bonus,
                        "kind": "signup",
                        "dedupe_key": "signup",
                        "reason": "Sign-up bonus",
                        "expires_at": expires,
                        "at": now,
                    }
                    for cid in new_ids
                ],
            )
            marks = ", ".join([db.param] * len(new_ids))
            db.execute_sql(
                f'UPDATE "customer" SET "points" = "points" + {db.param} WHERE "id" IN ({marks})',
                [bonus, *new_ids],
            )
            given += len(new_ids)
    return given


def multiplier_for(store: Store, at: datetime) -> tuple[int, str]:
    """The points multiplier on that instant's local day (member day, campaigns) and why."""
    day = at.astimezone(ZoneInfo(store.timezone)).date()
    best, why = 1, ""
    if store.member_day and day.day == int(store.member_day):
        factor = int(setting(store, "loyalty.member_day_multiplier") or 1)
        if factor > best:
            best, why = factor, "Member day"
    for campaign in setting(store, "loyalty.campaigns") or []:
        try:
            starts = date.fromisoformat(str(campaign["starts_on"]))
            ends = date.fromisoformat(str(campaign["ends_on"]))
            factor = int(campaign.get("multiplier", 2))
        except (KeyError, TypeError, ValueError):
            continue
        if starts <= day <= ends and factor > best:
            best, why = factor, str(campaign.get("name") or "Campaign")
    return best, why


def points_for_amount(store: Store, amount: Decimal, at: datetime) -> tuple[int, str]:
    """Points earned by spending `amount` at that instant, and the campaign that boosted it."""
    if amount is None or amount <= 0:
        return 0, ""
    rate = _decimal(setting(store, "loyalty.points_per_unit"), "1")
    base = int((Decimal(amount) * rate).to_integral_value(rounding=ROUND_FLOOR))
    factor, why = multiplier_for(store, at)
    return base * factor, (f"{why} ×{factor}" if factor > 1 else "")


def _refunded_order_ids(external_id: str) -> list[str]:
    """The order ids a refund's external id may name, most literal first: `refund:<id>` or
    `<id>:refund`, each optionally with a `:<n>` suffix so one order can have several refunds."""
    ext = external_id or ""
    found = []
    if ext.startswith("refund:"):
        rest = ext[len("refund:") :]
        found += [rest, rest.rpartition(":")[0]]
    head, marker, tail = ext.rpartition(":refund")
    if marker and (tail == "" or tail.startswith(":")):
        found.append(head)
    return [order for order in dict.fromkeys(found) if order]


def original_of_refund(refund: Event) -> Event | None:
    """The order a refund undoes, named in its external id (see `_refunded_order_ids`)."""
    for original in _refunded_order_ids(refund.external_id):
        event = Event.get_or_none(
            (Event.store == refund.store_id)
            & (Event.external_id == original)
            & (Event.customer == refund.customer_id)
            & (Event.type != "refund")
        )
        if event is not None:
            return event
    return None


def credit_for_event(event: Event, now: datetime) -> int:
    """Earn points for a purchase once, or reverse an order's points for a refund; the change."""
    store = _store(event.store_id)
    if not setting(store, "loyalty.enabled"):
        return 0
    if event.type == "refund":
        original = original_of_refund(event)
        if original is not None:
            return reverse_event(original, now, reason=f"Refund {event.external_id}", refund=event)
        # Without the order it undoes, take back the base rate for the amount (no bonus).
        refunded = -(event.amount or Decimal("0"))
        rate = _decimal(setting(store, "loyalty.points_per_unit"), "1")
        points = int((Decimal(refunded) * rate).to_integral_value(rounding=ROUND_FLOOR))
        if points <= 0:
            return 0
        with _write_tx():
            landed = _add_entry(
                store.id,
                event.customer_id,
                -points,
                "reverse",
                now,
                dedupe_key=f"reverse:{event.id}",
                event_id=event.id,
                reason=f"Refund {event.external_id}"[:200],
            )
        return -points if landed else 0
    if event.type not in setting(store, "loyalty.earn_types"):
        return 0
    points, why = points_for_amount(store, event.amount, event.occurred_at)
    if points <= 0:
        return 0
    with _write_tx():
        _lock_customer(event.customer_id)
        reversed_already = (
            PointsEntry.select()
            .where(
                (PointsEntry.customer == event.customer_id)
                & (PointsEntry.dedupe_key == f"reverse:{event.id}")
            )
            .exists()
        )
        if reversed_already:
            return 0
        landed = _add_entry(
            store.id,
            event.customer_id,
            points,
            "earn",
            now,
            dedupe_key=f"earn:{event.id}",
            event_id=event.id,
            reason=(f"Order {event.external_id}" + (f" ({why})" if why else ""))[:200],
            expires_at=_lot_expiry(store, event.occurred_at),
        )
    return points if landed else 0


def _lock_customer(customer_id: int) -> None:
    """On PostgreSQL, hold the customer's row so an order's credit and its refund take turns."""
    if is_postgres():
        list(Customer.select(Customer.id).where(Customer.id == customer_id).for_update())


def _refund_share(
    original: Event, earned: int, reversed_so_far: int, refund: Event | None
) -> tuple[int, Event | None]:
    """How many of an order's earned points a refund takes back, and the partial refund it is.

    A refund without an amount (a cancelled order) or one that, with the earlier refunds of the
    order, covers its whole amount takes back everything not yet taken back. A partial refund takes
    back the same share of the points as of the money, counted over all its refunds so far, so
    partial refunds that add up to the order take back exactly the points it earned."""
    order_amount = abs(Decimal(original.amount or 0))
    refunded = (
        abs(Decimal(refund.amount)) if refund is not None and refund.amount is not None else None
    )
    if refunded is None or order_amount <= 0:
        return earned - reversed_so_far, None
    before = (
        PointsEntry.select(pw.fn.COALESCE(pw.fn.SUM(Event.amount), 0))
        .join(Event, on=(PointsEntry.event == Event.id))
        .where(
            (PointsEntry.customer == original.customer_id)
            & PointsEntry.dedupe_key.startswith(f"reverse:{original.id}:")
            & (Event.id != refund.id)
        )
        .scalar()
    )
    total = abs(Decimal(before or 0)) + refunded
    if total >= order_amount:
        target = earned
    else:
        target = int((earned * total / order_amount).to_integral_value(rounding=ROUND_FLOOR))
    return max(0, min(earned, target) - reversed_so_far), refund


def reverse_event(
    original: Event, now: datetime, reason: str = "", refund: Event | None = None
) -> int:
    """Take back the points an order earned: all of them for a cancellation or a full refund, the
    refunded share for a partial `refund` event (each refund once); answers the change."""
    with _write_tx():
        _lock_customer(original.customer_id)
        earned = PointsEntry.get_or_none(
            (PointsEntry.customer == original.customer_id)
            & (PointsEntry.dedupe_key == f"earn:{original.id}")
        )
        if earned is None:
            # A zero row still lands: it stops a late credit of a refunded order.
            _add_entry(
                original.store_id,
                original.customer_id,
                0,
                "reverse",
                now,
                dedupe_key=f"reverse:{original.id}",
                event_id=original.id,
                reason=reason or f"Order {original.external_id} reversed",
            )
            return 0
        reversed_so_far = -int(
            PointsEntry.select(pw.fn.COALESCE(pw.fn.SUM(PointsEntry.delta), 0))
            .where(
                (PointsEntry.customer == original.customer_id)
                & (
                    (PointsEntry.dedupe_key == f"reverse:{original.id}")
                    | PointsEntry.dedupe_key.startswith(f"reverse:{original.id}:")
                )
            )
            .scalar()
            or 0
        )
        share, partial = _refund_share(original, earned.delta, reversed_so_far, refund)
        # A partial refund's row names the refund (its amount counts towards later ones).
        landed = _add_entry(
            original.store_id,
            original.customer_id,
            -share,
            "reverse",
            now,
            dedupe_key=f"reverse:{original.id}" + (f":{partial.id}" if partial else ""),
            event_id=partial.id if partial else original.id,
            reason=reason or f"Order {original.external_id} reversed",
            expires_at=earned.expires_at,
        )
    return -share if landed else 0


def adjust(customer: Customer, delta: int, reason: str, staff: Staff | None, now: datetime) -> int:
    """A manager's correction with a reason; a deduction never takes the balance below zero."""
    reason = (reason or "").strip()
    if not reason:
        raise LoyaltyError(_l("Give a reason for the adjustment."), "reason")
    if not delta:
        raise LoyaltyError(_l("Enter a number of points other than zero."), "delta")
    store = _store(customer.store_id)
    with _write_tx():
        if delta < 0:
            moved = (
                Customer.update(points=Customer.points + delta)
                .where((Customer.id == customer.id) & (Customer.points >= -delta))
                .execute()
            )
            if moved != 1:
                raise LoyaltyError(_l("The customer does not have that many points."), "delta")
            PointsEntry.create(
                store=store.id,
                customer=customer.id,
                delta=delta,
                kind="adjust",
                reason=reason[:200],
                staff=staff.id if staff else None,
                at=now,
            )
        else:
            _add_entry(
                store.id,
                customer.id,
                delta,
                "adjust",
                now,
                reason=reason,
                staff_id=staff.id if staff else None,
                expires_at=_lot_expiry(store, now),
            )
    return delta


# ---------------------------------------------------------------- expiry


def _expiry_aggregate(store_id: int, cutoff: datetime):
    """Per customer: points of lots expired by `cutoff` and points already consumed (FIFO)."""
    lots = pw.fn.SUM(pw.Case(None, [(PointsEntry.expires_at <= cutoff, PointsEntry.delta)], 0))
    consumed = pw.fn.SUM(
        pw.Case(
            None,
            [((PointsEntry.expires_at.is_null()) & (PointsEntry.delta < 0), 0 - PointsEntry.delta)],
            0,
        )
    )
    return lots, consumed


def expire_points(now: datetime) -> int:
    """Expire the unspent part of every lot past its expiry, oldest first; answers rows added."""
    added = 0
    for store in Store.select():
        # The FIFO sums count earlier expiries as spent, so a rerun finds nothing; the
        # run's own stamp only marks which rows to move the cached balances by.
        stamp = f"expire:{now.isoformat()}:{secrets.token_hex(6)}"
        lots, consumed = _expiry_aggregate(store.id, now)
        due = (
            PointsEntry.select(PointsEntry.customer)
            .where(PointsEntry.store == store.id)
            .group_by(PointsEntry.customer)
            .having(lots - consumed > 0)
        )
        with _write_tx():
            if is_postgres():
                # Lock the customers first so a redemption at this instant waits for us.
                list(Customer.select(Customer.id).where(Customer.id.in_(due)).for_update())
            amounts = (
                PointsEntry.select(
                    PointsEntry.store,
                    PointsEntry.customer,
                    (consumed - lots).alias("delta"),
                    pw.Value("expire").alias("kind"),
                    pw.Value(stamp).alias("dedupe_key"),
                    pw.Value("Points expired").alias("reason"),
                    pw.Value(PointsEntry.at.db_value(now)).alias("at"),
                )
                .where(PointsEntry.store == store.id)
                .group_by(PointsEntry.store, PointsEntry.customer)
                .having(lots - consumed > 0)
            )
            cursor = db.execute(
                PointsEntry.insert_from(
                    amounts,
                    [
                        PointsEntry.store,
                        PointsEntry.customer,
                        PointsEntry.delta,
                        PointsEntry.kind,
                        PointsEntry.dedupe_key,
                        PointsEntry.reason,
                        PointsEntry.at,
                    ],
                ).on_conflict_ignore()
            )
            added += max(cursor.rowcount, 0)
            _apply_entries_to_cache(stamp, store.id)
    return added


def _apply_entries_to_cache(dedupe_key: str, store_id: int) -> None:
    """Move cached balances by the ledger rows just added under one dedupe key (UPDATE … FROM)."""
    added = (
        PointsEntry.select(PointsEntry.customer, PointsEntry.delta)
        .where((PointsEntry.dedupe_key == dedupe_key) & (PointsEntry.store == store_id))
        .alias("added")
    )
    Customer.update(points=Customer.points + added.c.delta).from_(added).where(
        Customer.id == added.c.customer_id
    ).execute()


def expiring_points(store: Store, now: datetime, days: tuple[int, ...] = (30, 60, 90)) -> dict:
    """Points that will expire within each horizon (days → points), FIFO-aware."""
    result = {}
    for horizon in days:
        lots, consumed = _expiry_aggregate(store.id, now + timedelta(days=horizon))
        per_customer = (
            PointsEntry.select((lots - consumed).alias("n"))
            .where(PointsEntry.store == store.id)
            .group_by(PointsEntry.customer)
            .having(lots - consumed > 0)
        )
        total = (
            Customer.select(pw.fn.COALESCE(pw.fn.SUM(per_customer.c.n), 0))
            .from_(per_customer)
            .scalar()
        )
        result[horizon] = int(total or 0)
    return result


# ---------------------------------------------------------------- rewards and coupons


def rewards_for(store: Store, active_only: bool = True):
    """The store's rewards, cheapest first."""
    query = Reward.select().where(Reward.store == store.id)
    if active_only:
        query = query.where(Reward.active == True)  # noqa: E712
    return query.order_by(Reward.points_price, Reward.name)


def save_reward(store: Store, data: dict, reward: Reward | None = None) -> Reward:
    """Create or update a reward from form values; LoyaltyError names a bad field."""
    name = (data.get("name") or "").strip()
    if not name:
        raise LoyaltyError(_l("Give the reward a name."), "name")
    try:
        price = int(str(data.get("points_price") or "").strip())
    except ValueError:
        raise LoyaltyError(_l("The points price must be a whole number."), "points_price") from None
    if price <= 0:
        raise LoyaltyError(_l("The points price must be more than zero."), "points_price")
    stock_raw = str(data.get("stock") or "").strip()
    stock = None
    if stock_raw:
        try:
            stock = int(stock_raw)
        except ValueError:
            raise LoyaltyError(_l("Stock must be a whole number or empty."), "stock") from None
        if stock < 0:
            raise LoyaltyError(_l("Stock cannot be negative."), "stock")
    fields = dict(
        name=name[:200],
        points_price=price,
        stock=stock,
        description=(data.get("description") or "").strip(),
        active=str(data.get("active", "1")) in ("1", "on", "true", "True"),
    )
    if reward is None:
        return Reward.create(store=store.id, **fields)
    Reward.update(**fields).where(Reward.id == reward.id).execute()
    return Reward.get_by_id(reward.id)


def remove_reward(reward: Reward) -> None:
    """Delete a reward nobody redeemed yet; switch it off otherwise (coupons keep their name)."""
    with _write_tx():
        if Coupon.select().where(Coupon.reward == reward.id).exists():
            Reward.update(active=False).where(Reward.id == reward.id).execute()
        else:
            Reward.delete().where(Reward.id == reward.id).execute()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def redeem(
    customer: Customer,
    reward: Reward,
    now: datetime,
    staff: Staff | None = None,
    source: str = "counter",
    request_key: str | None = None,
) -> Coupon:
    """Swap points for a coupon atomically; the same request key twice gives the same coupon."""
    if reward.store_id != customer.store_id or not reward.active:
        raise LoyaltyError(_l("This reward is not available."), "reward")
    store = _store(customer.store_id)
    price = int(reward.points_price)
    dedupe = f"redeem:{request_key[:60]}" if request_key else f"redeem:{secrets.token_hex(12)}"
    with _write_tx():
        landed = db.execute(
            PointsEntry.insert(
                store=store.id,
                customer=customer.id,
                delta=-price,
                kind="redeem",
                dedupe_key=dedupe,
                reason=reward.name[:200],
                staff=staff.id if staff else None,
                at=now,
            ).on_conflict_ignore()
        ).rowcount
        if landed != 1:
            existing = (
                Coupon.select()
                .join(PointsEntry, on=(Coupon.redeem_entry == PointsEntry.id))
                .where((PointsEntry.customer == customer.id) & (PointsEntry.dedupe_key == dedupe))
                .first()
            )
            if existing is None:
                raise LoyaltyError(_l("This reward is not available."), "reward")
            return existing
        moved = (
            Customer.update(points=Customer.points - price)
            .where((Customer.id == customer.id) & (Customer.points >= price))
            .execute()
        )
        if moved != 1:
            raise LoyaltyError(_l("Not enough points for this reward."), "reward")
        if reward.stock is not None:
            taken = (
                Reward.update(stock=Reward.stock - 1)
                .where((Reward.id == reward.id) & (Reward.stock > 0))
                .execute()
            )
            if taken != 1:
                raise LoyaltyError(_l("This reward is out of stock."), "reward")
        entry = PointsEntry.get(
            (PointsEntry.customer == customer.id) & (PointsEntry.dedupe_key == dedupe)
        )
        days = int(setting(store, "loyalty.coupon_days") or 30)
        for _attempt in range(5):
            try:
                with db.atomic():
                    return Coupon.create(
                        store=store.id,
                        customer=customer.id,
                        reward=reward.id,
                        code=_new_code(),
                        points=price,
                        source=source,
                        redeem_entry=entry.id,
                        issued_by=staff.id if staff else None,
                        issued_at=now,
                        expires_at=now + timedelta(days=days),
                    )
            except pw.IntegrityError:
                continue
        raise RuntimeError("could not draw a unique coupon code")


def use_coupon(coupon: Coupon, staff: Staff | None, now: datetime) -> Coupon:
    """Mark a coupon used at the counter, once; LoyaltyError if used or expired."""
    done = (
        Coupon.update(status="used", used_at=now, used_by=staff.id if staff else None)
        .where((Coupon.id == coupon.id) & (Coupon.status == "active") & (Coupon.expires_at > now))
        .execute()
    )
    fresh = Coupon.get_by_id(coupon.id)
    if done != 1:
        if fresh.status == "used":
            raise LoyaltyError(_l("This coupon was already used."), "coupon")
        raise LoyaltyError(_l("This coupon has expired."), "coupon")
    return fresh


def find_coupon(store: Store, code: str) -> Coupon | None:
    """A coupon of the store by its code (spaces and case ignored)."""
    clean = "".join((code or "").split()).upper()
    return Coupon.get_or_none((Coupon.store == store.id) & (Coupon.code == clean))


def expire_coupons(now: datetime) -> int:
    """Expire unused coupons past their date; give the points back where the store chooses."""
    total = 0
    for store in Store.select():
        refund = bool(setting(store, "loyalty.refund_expired_coupons"))
        with _write_tx():
            due = Coupon.select(Coupon.id).where(
                (Coupon.store == store.id)
                & (Coupon.status == "active")
                & (Coupon.expires_at <= now)
            )
            if is_postgres():
                due = due.for_update()
            ids = [c.id for c in due]
            if not ids:
                continue
            if refund:
                _refund_coupons(store, ids, now)
            same_reward = Coupon.select(pw.fn.COUNT(Coupon.id)).where(
                Coupon.id.in_(ids) & (Coupon.reward == Reward.id)
            )
            Reward.update(stock=Reward.stock + same_reward).where(
                Reward.stock.is_null(False)
                & Reward.id.in_(Coupon.select(Coupon.reward).where(Coupon.id.in_(ids)))
            ).execute()
            total += (
                Coupon.update(status="expired", refunded=refund).where(Coupon.id.in_(ids)).execute()
            )
    return total


def _refund_coupons(store: Store, ids: list[int], now: datetime) -> None:
    """Give back the points of these expiring coupons (one ledger row each) and move balances."""
    expires = _lot_expiry(store, now)
    rows = Coupon.select(
        Coupon.store,
        Coupon.customer,
        Coupon.points,
        pw.Value("refund").alias("kind"),
        pw.Value("coupon-refund:").concat(Coupon.id.cast("TEXT")).alias("dedupe_key"),
        pw.Value("Coupon expired unused").alias("reason"),
        pw.Value(PointsEntry.at.db_value(now)).alias("at"),
        (pw.Value(PointsEntry.expires_at.db_value(expires)) if expires else pw.SQL("NULL")).alias(
            "exp"
        ),
    ).where(Coupon.id.in_(ids))
    db.execute(
        PointsEntry.insert_from(
            rows,
            [
                PointsEntry.store,
                PointsEntry.customer,
                PointsEntry.delta,
                PointsEntry.kind,
                PointsEntry.dedupe_key,
                PointsEntry.reason,
                PointsEntry.at,
                PointsEntry.expires_at,
            ],
        ).on_conflict_ignore()
    )
    back = Coupon.select(pw.fn.COALESCE(pw.fn.SUM(Coupon.points), 0)).where(
        Coupon.id.in_(ids) & (Coupon.customer == Customer.id)
    )
    Customer.update(points=Customer.points + back).where(
        Customer.id.in_(Coupon.select(Coupon.customer).where(Coupon.id.in_(ids)))
    ).execute()


# ---------------------------------------------------------------- tiers


def recompute_tiers(store: Store, now: datetime) -> int:
    """Set every customer's level from points earned or spend in the last 12 months (set-based)."""
    tiers = [t for t in (setting(store, "loyalty.tiers") or []) if isinstance(t, dict)]
    tiers = [t for t in tiers if t.get("name") and ("min_points" in t or "min_spend" in t)]
    if not tiers:
        return 0
    since = now - relativedelta(months=12)
    earned = PointsEntry.select(pw.fn.COALESCE(pw.fn.SUM(PointsEntry.delta), 0)).where(
        (PointsEntry.customer == Customer.id)
        & (PointsEntry.kind.in_(("earn", "bonus", "reverse")))
        & (PointsEntry.at > since)
    )
    spend_types = list(setting(store, "loyalty.earn_types")) + ["refund"]
    spent = Event.select(pw.fn.COALESCE(pw.fn.SUM(Event.amount), 0)).where(
        (Event.customer == Customer.id)
        & (Event.type.in_(spend_types))
        & (Event.occurred_at > since)
    )
    whens = []
    # Listed lowest to highest: the highest tier reached wins.
    for tier in reversed(tiers):
        conditions = []
        if tier.get("min_points") not in (None, ""):
            conditions.append(earned >= int(tier["min_points"]))
        if tier.get("min_spend") not in (None, ""):
            conditions.append(spent >= float(_decimal(tier["min_spend"], "0")))
        if not conditions:
            continue
        condition = conditions[0] if len(conditions) == 1 else (conditions[0] | conditions[1])
        whens.append((condition, str(tier["name"])[:40]))
    with _write_tx():
        return (
            Customer.update(level=pw.Case(None, whens, None))
            .where(Customer.store == store.id)
            .execute()
        )


def run_due(now: datetime) -> dict:
    """Everything loyalty does on the clock: expire points and coupons, recompute tiers."""
    coupons = expire_coupons(now)
    expired = expire_points(now)
    tiered = sum(recompute_tiers(store, now) for store in Store.select())
    return {"coupons_expired": coupons, "points_expired": expired, "tiers_updated": tiered}


# ---------------------------------------------------------------- reports and summaries


def report(store: Store, now: datetime) -> dict:
    """Points issued, redeemed and expired, the outstanding liability and what expires soon."""
    rows = (
        PointsEntry.select(PointsEntry.kind, pw.fn.COALESCE(pw.fn.SUM(PointsEntry.delta), 0))
        .where(PointsEntry.store == store.id)
        .group_by(PointsEntry.kind)
        .tuples()
    )
    by_kind = {kind: int(total) for kind, total in rows}
    positive_adjust = (
        PointsEntry.select(pw.fn.COALESCE(pw.fn.SUM(PointsEntry.delta), 0))
        .where(
            (PointsEntry.store == store.id)
            & (PointsEntry.kind == "adjust")
            & (PointsEntry.delta > 0)
        )
        .scalar()
    )
    issued = sum(by_kind.get(k, 0) for k in ("signup", "earn", "bonus")) + int(positive_adjust)
    issued += by_kind.get("reverse", 0)
    redeemed = -by_kind.get("redeem", 0) - by_kind.get("refund", 0)
    outstanding = int(
        Customer.select(pw.fn.COALESCE(pw.fn.SUM(Customer.points), 0))
        .where((Customer.store == store.id) & (Customer.points > 0))
        .scalar()
        or 0
    )
    value = _decimal(setting(store, "loyalty.value_per_point"), "0.01")
    return {
        "issued": issued,
        "redeemed": redeemed,
        "expired": -by_kind.get("expire", 0),
        "adjusted_down": -(by_kind.get("adjust", 0) - int(positive_adjust)),
        "outstanding": outstanding,
        "value_per_point": value,
        "liability": (value * outstanding).quantize(Decimal("0.01")),
        "expiring": expiring_points(store, now),
        "coupons_active": Coupon.select()
        .where((Coupon.store == store.id) & (Coupon.status == "active"))
        .count(),
    }


@dataclass
class Standing:
    """Where a customer stands: balance, the next reward and what they can take now."""

    points: int
    rewards: list
    within_reach: list
    next_reward: Reward | None
    points_needed: int
    progress_percent: int


def standing(customer: Customer) -> Standing:
    """The customer's balance against the store's active, in-stock rewards."""
    store = _store(customer.store_id)
    rewards = [r for r in rewards_for(store) if r.stock is None or r.stock > 0]
    points = int(customer.points)
    within = [r for r in rewards if r.points_price <= points]
    ahead = [r for r in rewards if r.points_price > points]
    nxt = ahead[0] if ahead else None
    needed = nxt.points_price - points if nxt else 0
    percent = min(100, max(0, int(points * 100 / nxt.points_price))) if nxt else 100
    return Standing(points, rewards, within, nxt, needed, percent)


def redeemed_so_far(customer: Customer) -> list[tuple[str, int]]:
    """The rewards a customer has taken (coupons not expired), with how many times each."""
    rows = (
        Coupon.select(Reward.name, pw.fn.COUNT(Coupon.id))
        .join(Reward)
        .where((Coupon.customer == customer.id) & (Coupon.status.in_(("active", "used"))))
        .group_by(Reward.name)
        .order_by(pw.fn.COUNT(Coupon.id).desc(), Reward.name)
        .tuples()
    )
    return [(name, int(n)) for name, n in rows]


def reminder_context(customer: Customer, now: datetime) -> dict:
    """The points reminder's content: balance, rewards within reach, points to the next, taken."""
    fresh = Customer.get_by_id(customer.id)
    where = standing(fresh)
    taken = redeemed_so_far(fresh)
    path = portal_path(fresh, now)
    return {
        "points": where.points,
        "rewards_within_reach": [r.name for r in where.within_reach],
        "rewards_within_reach_text": ", ".join(r.name for r in where.within_reach),
        "next_reward": where.next_reward.name if where.next_reward else "",
        "next_reward_points": where.next_reward.points_price if where.next_reward else 0,
        "points_to_next_reward": where.points_needed,
        "redeemed": [{"reward": name, "count": n} for name, n in taken],
        "redeemed_count": sum(n for _name, n in taken),
        "redeemed_text": ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in taken),
        "portal_path": path,
        "portal_url": _external_url(path),
    }


NOTHING_YET = N_("nothing yet")
EVERY_REWARD = N_("every reward is yours to take")
NEXT_REWARD = N_("%(reward)s, %(n)s points to go")


def _taken_text(taken: list[tuple[str, int]], locale: str) -> str:
    if not taken:
        return translate(locale, NOTHING_YET)
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in taken)


def script_fields(store: Store, rows: list[tuple[int, int, str]], now: datetime) -> dict:
    """The loyalty variables of many customers' scripts at once, keyed by customer id; rows are
    (customer id, points, locale). A few queries per 500 customers, however many rewards:
    the points reminder's four items (seed 001) and the link to the client's own page."""
    rewards = [r for r in rewards_for(store) if r.stock is None or r.stock > 0]
    out: dict[int, dict] = {}
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        ids = [cid for cid, _points, _loc in chunk]
        taken: dict[int, list] = {}
        for cid, name, n in (
            Coupon.select(Coupon.customer, Reward.name, pw.fn.COUNT(Coupon.id))
            .join(Reward)
            .where(Coupon.customer.in_(ids) & Coupon.status.in_(("active", "used")))
            .group_by(Coupon.customer, Reward.name)
            .order_by(Coupon.customer, pw.fn.COUNT(Coupon.id).desc(), Reward.name)
            .tuples()
        ):
            taken.setdefault(cid, []).append((name, int(n)))
        keys = _portal_secrets(ids)
        for cid, points, loc in chunk:
            points = int(points or 0)
            within = [r.name for r in rewards if r.points_price <= points]
            ahead = next((r for r in rewards if r.points_price > points), None)
            if ahead is not None:
                next_text = translate(
                    loc, NEXT_REWARD, reward=ahead.name, n=ahead.points_price - points
                )
            else:
                next_text = translate(loc, EVERY_REWARD) if rewards else ""
            token = _portal_serializer(Customer(id=cid, portal_secret=keys[cid]), now).dumps(cid)
            out[cid] = {
                "next_reward": next_text,
                "points_to_next_reward": ahead.points_price - points if ahead else None,
                "rewards_within_reach": ", ".join(within) or translate(loc, NOTHING_YET),
                "redeemed_so_far": _taken_text(taken.get(cid, []), loc),
                "points_link": f"{_public_url()}/p/{token}",
            }
    return out


def _portal_secrets(ids: list[int]) -> dict[int, str]:
    """Each customer's portal secret, giving one (in one statement) to those who have none."""
    have = dict(
        Customer.select(Customer.id, Customer.portal_secret).where(Customer.id.in_(ids)).tuples()
    )
    missing = [cid for cid, key in have.items() if not key]
    if missing:
        fresh = {cid: secrets.token_hex(16) for cid in missing}
        Customer.update(
            portal_secret=pw.Case(Customer.id, [(cid, key) for cid, key in fresh.items()])
        ).where(Customer.id.in_(missing) & Customer.portal_secret.is_null()).execute()
        have.update(
            Customer.select(Customer.id, Customer.portal_secret)
            .where(Customer.id.in_(missing))
            .tuples()
        )
    return have


def _public_url() -> str:
    from app.services.messaging import public_url

    return public_url()


def _external_url(path: str) -> str:
    """The full address of a path when the app knows its host (request or SERVER_NAME), else ""."""
    from flask import current_app, has_app_context, has_request_context, request

    if has_request_context():
        return request.host_url.rstrip("/") + path
    if has_app_context() and current_app.config.get("SERVER_NAME"):
        scheme = current_app.config.get("PREFERRED_URL_SCHEME", "http")
        return f"{scheme}://{current_app.config['SERVER_NAME']}{path}"
    return ""


# ---------------------------------------------------------------- the client's own page


def _secret_key() -> str:
    """The app's SECRET_KEY (from the running app, else as the app would load it)."""
    from flask import current_app, has_app_context

    if has_app_context():
        return str(current_app.config["SECRET_KEY"])
    return str(config.load()["SECRET_KEY"])


def _portal_serializer(customer: Customer, now: datetime) -> URLSafeTimedSerializer:
    """A serializer keyed on the app secret and the customer's own secret, clocked at `now`."""
    stamp = int(now.timestamp())

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return stamp

    key = hashlib.sha256(f"{_secret_key()}:{customer.portal_secret}".encode()).hexdigest()
    return URLSafeTimedSerializer(key, salt="revisit.portal", signer=ClockedSigner)


def ensure_portal_secret(customer: Customer) -> Customer:
    """Give the customer a portal secret if they have none (race-safe); answers them fresh."""
    if not customer.portal_secret:
        Customer.update(portal_secret=secrets.token_hex(16)).where(
            (Customer.id == customer.id) & Customer.portal_secret.is_null()
        ).execute()
        customer = Customer.get_by_id(customer.id)
    return customer


def rotate_portal_secret(customer: Customer) -> Customer:
    """A new portal secret: every link sent before stops working."""
    Customer.update(portal_secret=secrets.token_hex(16)).where(Customer.id == customer.id).execute()
    return Customer.get_by_id(customer.id)


def portal_token(customer: Customer, now: datetime) -> str:
    """A signed token for the customer's own page."""
    customer = ensure_portal_secret(customer)
    return _portal_serializer(customer, now).dumps(customer.id)


def portal_path(customer: Customer, now: datetime) -> str:
    """The path of the customer's own page (/p/<token>)."""
    return f"/p/{portal_token(customer, now)}"


def customer_for_token(token: str, now: datetime) -> Customer | None:
    """The customer a portal token belongs to, or None if tampered, rotated or expired."""
    if not token or len(token) > 500:
        return None
    try:
        ok, payload = URLSafeTimedSerializer("unverified", salt="revisit.portal").loads_unsafe(
            token
        )
    except Exception:  # noqa: BLE001 — any malformed token is simply not a token
        return None
    if not isinstance(payload, int):
        return None
    customer = Customer.get_or_none(Customer.id == payload)
    if customer is None or not customer.portal_secret:
        return None
    store = _store(customer.store_id)
    max_age = int(setting(store, "loyalty.portal_link_days") or 90) * 86400
    try:
        value = _portal_serializer(customer, now).loads(token, max_age=max_age)
    except BadSignature:
        return None
    return customer if value == customer.id else None


def active_coupons(customer: Customer, now: datetime):
    """The customer's coupons still usable, soonest to expire first."""
    return (
        Coupon.select(Coupon, Reward)
        .join(Reward)
        .where(
            (Coupon.customer == customer.id)
            & (Coupon.status == "active")
            & (Coupon.expires_at > now)
        )
        .order_by(Coupon.expires_at)
    )


def active_cards(customer: Customer):
    """The customer's active cards."""
    return (
        CustomerCard.select()
        .where((CustomerCard.customer == customer.id) & (CustomerCard.status == "active"))
        .order_by(CustomerCard.expires_on)
    )


def recent_entries(customer: Customer, limit: int = 10):
    """The latest movements of the customer's points, with the order each one came from."""
    return (
        PointsEntry.select(PointsEntry, Event)
        .join(Event, pw.JOIN.LEFT_OUTER)
        .where(PointsEntry.customer == customer.id)
        .order_by(PointsEntry.at.desc(), PointsEntry.id.desc())
        .limit(limit)
    )


# ---------------------------------------------------------------- settings


def _parse_lines(text: str, kind: str) -> tuple[list, str]:
    """Tiers (`name | min points | min spend`) or campaigns (`name | from | to | multiplier`)."""
    rows, error = [], ""
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split("|")]
        if not parts or not parts[0]:
            continue
        try:
            if kind == "tiers":
                tier = {"name": parts[0][:40]}
                if len(parts) > 1 and parts[1]:
                    tier["min_points"] = int(parts[1])
                if len(parts) > 2 and parts[2]:
                    tier["min_spend"] = str(Decimal(parts[2]))
                if len(tier) == 1:
                    raise ValueError(line)
                rows.append(tier)
            else:
                starts, ends = date.fromisoformat(parts[1]), date.fromisoformat(parts[2])
                factor = int(parts[3]) if len(parts) > 3 and parts[3] else 2
                if ends < starts or factor < 1:
                    raise ValueError(line)
                rows.append(
                    {
                        "name": parts[0][:60],
                        "starts_on": starts.isoformat(),
                        "ends_on": ends.isoformat(),
                        "multiplier": factor,
                    }
                )
        except (ValueError, IndexError, InvalidOperation):
            error = line
    return rows, error


def parse_settings(form, fields: dict) -> tuple[dict, list[str]]:
    """Loyalty settings from a form: typed values and the problems found."""
    values, errors = {}, []
    for name, kind in fields.items():
        if name not in form:
            continue
        raw = (form.get(name) or "").strip()
        if kind == "bool":
            values[name] = raw in ("1", "on", "true")
            continue
        try:
            if kind == "int":
                values[name] = int(raw or 0)
                if values[name] < 0:
                    raise ValueError
            else:
                number = Decimal(raw or "0")
                if number < 0:
                    raise InvalidOperation
                values[name] = str(number)
        except (ValueError, InvalidOperation):
            errors.append(_l("%(field)s must be a number of zero or more.", field=name))
    if values.get("loyalty.coupon_days") == 0:
        errors.append(_l("Coupons must be valid for at least one day."))
    if values.get("loyalty.portal_link_days") == 0:
        errors.append(_l("Client page links must be valid for at least one day."))
    for key, kind in (("loyalty.tiers", "tiers"), ("loyalty.campaigns", "campaigns")):
        if key in form:
            rows, bad = _parse_lines(form.get(key, ""), kind)
            if bad:
                errors.append(_l("This line could not be read: %(line)s", line=bad))
            values[key] = rows
    return values, errors


def save_settings(store: Store, values: dict) -> Store:
    """Merge loyalty settings into the store's settings."""
    with _write_tx():
        fresh = Store.get_by_id(store.id)
        merged = dict(fresh.settings or {})
        merged.update(values)
        Store.update(settings=merged).where(Store.id == store.id).execute()
    return Store.get_by_id(store.id)
