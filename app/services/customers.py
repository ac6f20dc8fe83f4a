"""Customers: phone normalisation, validated create-or-update (one or a batch), tags, consent."""

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

import peewee as pw
import phonenumbers

from app import clock
from app.db import JSONField, db
from app.models import (
    Consent,
    ConsentChange,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Staff,
    StaffStore,
    Store,
    Tag,
)
from app.models.customers import CHANNELS, GENDERS
from app.services.validation import (
    Errors,
    ValidationError,
    blank,
    parse_bool,
    parse_date,
    parse_datetime,
    text,
)

log = logging.getLogger(__name__)

# Columns a create-or-update may write, with their text limits (None: not plain text).
COLUMNS = {
    "external_id": 100,
    "name": 200,
    "phone": None,
    "gender": None,
    "birthday": None,
    "source": 60,
    "level": 40,
    "email": 254,
    "line_id": 100,
    "joined_at": None,
    "notes": 5000,
    "assigned_staff": None,
}
INPUT_FIELDS = set(COLUMNS) | {"tags", "attributes", "consent"}
# Read-only keys of customer_dict, accepted and ignored so a GET body can be posted back.
READ_ONLY_FIELDS = {
    "id",
    "store",
    "last_visit_at",
    "first_visit_at",
    "visit_count",
    "total_spend",
    "points",
    "created_at",
    "updated_at",
}
GENDER_ALIASES = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "w": "female",
    "女": "female",
    "女性": "female",
    "หญิง": "female",
    "ผู้หญิง": "female",
    "perempuan": "female",
    "wanita": "female",
    "p": "female",
    "male": "male",
    "m": "male",
    "man": "male",
    "男": "male",
    "男性": "male",
    "ชาย": "male",
    "ผู้ชาย": "male",
    "lelaki": "male",
    "l": "male",
    "other": "other",
    "o": "other",
    "其他": "other",
    "其它": "other",
    "อื่นๆ": "other",
    "lain-lain": "other",
    "lain": "other",
}
TAG_SEPARATORS = re.compile(r"[,;|，；、\n]")
MAX_TAGS = 50
ATTRIBUTE_KEY = re.compile(r"^[\w .:/-]{1,60}$")


_PLAIN_NUMBER = re.compile(r"^[\d\s().\-]{4,30}$")


def _national_phone(value: str, region: str) -> str | None:
    """E.164 for a plain national number (digits, spaces, dashes), without a full parse."""
    if not _PLAIN_NUMBER.match(value):
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    digits = re.sub(r"\D", "", value)
    prefix = metadata.national_prefix or ""
    national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
    if not national or national[0] == "0" or len(national) > 15:
        return None
    number = phonenumbers.PhoneNumber(
        country_code=metadata.country_code, national_number=int(national)
    )
    if phonenumbers.is_valid_number(number):
        return f"+{metadata.country_code}{national}"
    return None


@lru_cache(maxsize=262_144)
def normalize_phone(raw: str, region: str) -> str:
    """The E.164 form of a phone number read with the store's default region."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    value = unicodedata.normalize("NFKC", str(raw if raw is not None else "")).strip()
    if not value:
        raise ValueError("phone is required")
    if len(value) > 40:
        raise ValueError(f"'{value[:40]}…' is not a valid phone number for region {region}")
    fast = _national_phone(value, region)
    if fast is not None:
        return fast
    candidates = [value]
    digits = re.sub(r"\D", "", value)
    if not value.startswith("+") and digits:
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise ValueError(f"'{value}' is not a valid phone number for region {region}")


def normalize_gender(raw) -> str:
    """female, male or other from the usual words in English, Chinese, Thai and Malay."""
    key = str(raw).strip().lower()
    if key in GENDER_ALIASES:
        return GENDER_ALIASES[key]
    raise ValueError(f"'{str(raw)[:40]}' is not a gender (use {', '.join(GENDERS)})")


def split_tags(raw) -> list[str]:
    """Tag names from a list or a text with commas, semicolons or 、."""
    if isinstance(raw, (list, tuple, set)):
        parts = [text(p, 60, "tag") for p in raw if not blank(p)]
    elif isinstance(raw, dict):
        raise ValueError("tags must be a list of names")
    else:
        parts = [p.strip() for p in TAG_SEPARATORS.split(str(raw))]
        for part in parts:
            if len(part) > 60:
                raise ValueError(f"tag '{part[:40]}…' is too long (at most 60 characters)")
    names = list(dict.fromkeys(p for p in parts if p))
    if len(names) > MAX_TAGS:
        raise ValueError(f"too many tags ({len(names)}, at most {MAX_TAGS})")
    return names


class StoreLookups:
    """Per-store caches of staff e-mails and tag names, loaded once per batch."""

    def __init__(self, store: Store):
        self.store = store
        self._staff: dict[str, int] | None = None
        self._tags: dict[str, int] | None = None

    def staff_id(self, email: str) -> int | None:
        """The id of a staff member of this store by e-mail (owners belong to every store)."""
        if self._staff is None:
            members = (
                Staff.select(Staff.id, Staff.email)
                .join(StaffStore, pw.JOIN.LEFT_OUTER, on=(StaffStore.staff == Staff.id))
                .where((StaffStore.store == self.store.id) | (Staff.role == "owner"))
            )
            self._staff = {s.email.lower(): s.id for s in members}
        return self._staff.get(email.strip().lower())

    def tags(self) -> dict[str, int]:
        """Tag name → id for this store."""
        if self._tags is None:
            self._tags = {
                t.name: t.id for t in Tag.select(Tag.id, Tag.name).where(Tag.store == self.store.id)
            }
        return self._tags

    def ensure_tags(self, names: set[str], now: datetime) -> dict[str, int]:
        """Create the missing tags (set-based) and return name → id."""
        known = self.tags()
        missing = [n for n in names if n not in known]
        if missing:
            Tag.insert_many(
                [{"store": self.store.id, "name": n, "created_at": now} for n in missing]
            ).on_conflict_ignore().execute()
            for tag in Tag.select(Tag.id, Tag.name).where(
                (Tag.store == self.store.id) & Tag.name.in_(missing)
            ):
                known[tag.name] = tag.id
        return known


def clean_customer(
    store: Store,
    data: dict,
    lookups: StoreLookups,
    create_missing_tags: bool = True,
    now: datetime | None = None,
) -> dict:
    """Validate a customer body; answer {"columns", "tags", "attributes", "consent"} or raise."""
    errors = Errors()
    if not isinstance(data, dict):
        raise ValidationError("the customer must be a JSON object", "")
    columns: dict = {}
    for key in data:
        if key not in INPUT_FIELDS and key not in READ_ONLY_FIELDS:
            errors.add(str(key)[:60], "unknown field")
    for key, limit in COLUMNS.items():
        if key not in data or limit is None:
            continue
        value = data[key]
        if blank(value):
            if key == "name":
                errors.add("name", "name cannot be empty")
            else:
                columns[key] = None
            continue
        cleaned = errors.check(key, text, value, limit, key)
        if cleaned is not None:
            columns[key] = cleaned
    if columns.get("email") and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", columns["email"]):
        errors.add("email", f"'{columns['email'][:60]}' is not a valid e-mail address")
    if "phone" in data:
        if blank(data["phone"]):
            errors.add("phone", "phone cannot be empty")
        else:
            phone = errors.check("phone", normalize_phone, data["phone"], store.region)
            if phone:
                columns["phone"] = phone
    if "gender" in data:
        columns["gender"] = (
            None
            if blank(data["gender"])
            else errors.check("gender", normalize_gender, data["gender"])
        )
    if "birthday" in data:
        if blank(data["birthday"]):
            columns["birthday"] = None
            columns["birthday_md"] = None
        else:
            birthday = errors.check("birthday", parse_date, data["birthday"])
            if birthday is not None:
                latest = (now or clock.now()).date()
                if birthday.year < 1900 or birthday > latest:
                    errors.add("birthday", f"{birthday.isoformat()} is not a plausible birthday")
                else:
                    columns["birthday"] = birthday
                    columns["birthday_md"] = birthday.month * 100 + birthday.day
    if "joined_at" in data and not blank(data["joined_at"]):
        joined = errors.check("joined_at", parse_datetime, data["joined_at"], store.timezone)
        if joined is not None:
            columns["joined_at"] = joined
    if "assigned_staff" in data:
        email = data["assigned_staff"]
        if blank(email):
            columns["assigned_staff"] = None
        elif not isinstance(email, str) or lookups.staff_id(email) is None:
            errors.add(
                "assigned_staff", f"no staff member with e-mail '{str(email)[:80]}' in this store"
            )
        else:
            columns["assigned_staff"] = lookups.staff_id(email)
    tags = None
    if "tags" in data and not blank(data["tags"]):
        tags = errors.check("tags", split_tags, data["tags"])
        if tags and not create_missing_tags:
            unknown = [t for t in tags if t not in lookups.tags()]
            if unknown:
                errors.add("tags", "unknown tag(s): " + ", ".join(unknown))
    attributes = None
    if "attributes" in data and data["attributes"] is not None:
        attributes = _clean_attributes(data["attributes"], errors)
    consent = None
    if "consent" in data and data["consent"] is not None:
        consent = _clean_consent(data["consent"], errors)
    errors.raise_if_any()
    return {"columns": columns, "tags": tags, "attributes": attributes, "consent": consent}


def _clean_attributes(raw, errors: Errors) -> dict:
    if not isinstance(raw, dict):
        errors.add("attributes", "attributes must be an object of key: value")
        return {}
    result = {}
    for key, value in raw.items():
        key_text = str(key).strip()
        if not ATTRIBUTE_KEY.match(key_text):
            errors.add(f"attributes.{key_text[:60]}", "attribute names are 1–60 letters or digits")
            continue
        if blank(value):
            result[key_text] = None
            continue
        cleaned = errors.check(f"attributes.{key_text}", text, value, 500, "value")
        if cleaned is not None:
            result[key_text] = cleaned
    return result


def _clean_consent(raw, errors: Errors) -> dict:
    if not isinstance(raw, dict):
        errors.add("consent", "consent must be an object of channel: true/false")
        return {}
    result = {}
    for channel, value in raw.items():
        if channel not in CHANNELS:
            errors.add(
                f"consent.{str(channel)[:30]}", f"unknown channel (use {', '.join(CHANNELS)})"
            )
            continue
        if blank(value):
            continue
        granted = errors.check(f"consent.{channel}", parse_bool, value)
        if granted is not None:
            result[channel] = granted
    return result


@dataclass(eq=False)
class CustomerDraft:
    """One customer's state while a batch of create-or-updates is applied in memory."""

    id: int | None
    row: dict
    tags: set = field(default_factory=set)
    attrs: dict = field(default_factory=dict)
    consent: dict = field(default_factory=dict)
    original: dict | None = None
    original_tags: set = field(default_factory=set)
    original_attrs: dict = field(default_factory=dict)
    original_consent: dict = field(default_factory=dict)
    touched: bool = False
    net: str = "unchanged"

    def remember(self) -> None:
        """Take the current state as the stored one (after loading or writing it)."""
        self.original = dict(self.row)
        self.original_tags = set(self.tags)
        self.original_attrs = dict(self.attrs)
        self.original_consent = dict(self.consent)


def bulk_insert(model, rows: list[dict], conflict: str = "") -> None:
    """Insert many rows with one prepared statement, converting values as the fields do."""
    if not rows:
        return
    meta = model._meta
    defaults = {
        name: f.default
        for name, f in meta.fields.items()
        if f.default is not None and name != "id" and name not in rows[0]
    }
    names = [n for n in rows[0] if n != "id"] + list(defaults)
    fields = [meta.fields[n] for n in names]
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    marks = ", ".join([db.param] * len(fields))
    sql = f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks}){conflict}'
    fixed = {n: (d() if callable(d) else d) for n, d in defaults.items()}
    plain = (pw.CharField, pw.TextField, pw.IntegerField, pw.ForeignKeyField, pw.AutoField)
    converters = [
        None if isinstance(f, plain) and not isinstance(f, JSONField) else f.db_value
        for f in fields
    ]
    pairs = list(zip(names, converters, strict=True))
    params, memo = [], {}
    for row in rows:
        values = []
        for name, convert in pairs:
            value = row[name] if name in row else fixed[name]
            if convert is not None and value is not None:
                # The same instant or date recurs on every row: convert it once.
                try:
                    value = memo[convert, value]
                except KeyError:
                    value = memo[convert, value] = convert(value)
                except TypeError:  # unhashable (a JSON value)
                    value = convert(value)
            values.append(value)
        params.append(values)
    db.cursor().executemany(sql, params)


_SELECT_COLUMNS = (
    Customer.id,
    Customer.external_id,
    Customer.name,
    Customer.phone,
    Customer.gender,
    Customer.birthday,
    Customer.birthday_md,
    Customer.source,
    Customer.level,
    Customer.email,
    Customer.line_id,
    Customer.joined_at,
    Customer.notes,
    Customer.assigned_staff,
)


def _customers_by_keys(store_id: int, phones: list[str], externals: list[str]) -> list[dict]:
    """Rows of this store's customers with one of these phones or external ids (plain SQL,
    because building a 1,000-value IN list through the query builder costs more than the query)."""
    if not phones and not externals:
        return []
    names = [f.name for f in _SELECT_COLUMNS]
    columns = ", ".join(f'"{f.column_name}"' for f in _SELECT_COLUMNS)
    param = db.param
    clauses, params = [], [store_id]
    if phones:
        clauses.append(f'"phone" IN ({", ".join([param] * len(phones))})')
        params.extend(phones)
    if externals:
        clauses.append(f'"external_id" IN ({", ".join([param] * len(externals))})')
        params.extend(externals)
    sql = (
        f'SELECT {columns} FROM "customer" WHERE "store_id" = {param} AND ({" OR ".join(clauses)})'
    )
    converters = [
        None
        if isinstance(f, (pw.CharField, pw.TextField, pw.IntegerField, pw.AutoField))
        and not isinstance(f, pw.ForeignKeyField)
        else f.python_value
        for f in _SELECT_COLUMNS
    ]
    rows = []
    for values in db.execute_sql(sql, params).fetchall():
        rows.append(
            {
                name: (value if convert is None or value is None else convert(value))
                for name, convert, value in zip(names, converters, values, strict=True)
            }
        )
    return rows


class CustomerBatch:
    """Applies many cleaned customer bodies in memory, then writes them set-based."""

    def __init__(
        self,
        store: Store,
        now: datetime,
        source: str = "api",
        staff: Staff | None = None,
        lookups: StoreLookups | None = None,
    ):
        self.store = store
        self.now = now
        self.source = source
        self.staff = staff
        self.lookups = lookups or StoreLookups(store)
        self.by_external: dict[str, CustomerDraft] = {}
        self.by_phone: dict[str, CustomerDraft] = {}
        self.drafts: list[CustomerDraft] = []
        self._indexed: set[int] = set()

    def prefetch(self, cleaned: list[dict]) -> None:
        """Load the existing customers (with tags, attributes, consent) these bodies may match."""
        phones = {c["columns"]["phone"] for c in cleaned if c["columns"].get("phone")}
        externals = {
            c["columns"]["external_id"] for c in cleaned if c["columns"].get("external_id")
        }
        phones -= set(self.by_phone)
        externals -= set(self.by_external)
        if not phones and not externals:
            return
        found: dict[int, CustomerDraft] = {}
        for row in _customers_by_keys(self.store.id, sorted(phones), sorted(externals)):
            if row["id"] not in found:
                found[row["id"]] = CustomerDraft(id=row["id"], row=row)
        found = list(found.values())
        if not found:
            return
        by_id = {d.id: d for d in found}
        marks = ", ".join([db.param] * len(by_id))
        ids = list(by_id)
        tag_sql = (
            'SELECT ct."customer_id", t."name" FROM "customer_tag" ct '
            f'JOIN "tag" t ON t."id" = ct."tag_id" WHERE ct."customer_id" IN ({marks})'
        )
        for cid, name in db.execute_sql(tag_sql, ids).fetchall():
            by_id[cid].tags.add(name)
        attr_sql = (
            'SELECT "customer_id", "key", "value" FROM "customer_attribute" '
            f'WHERE "customer_id" IN ({marks})'
        )
        for cid, key, value in db.execute_sql(attr_sql, ids).fetchall():
            by_id[cid].attrs[key] = value
        consent_sql = f'SELECT "customer_id", "channel", "granted" FROM "consent" WHERE "customer_id" IN ({marks})'
        for cid, channel, granted in db.execute_sql(consent_sql, ids).fetchall():
            by_id[cid].consent[channel] = bool(granted)
        for draft in found:
            draft.remember()
            self._index(draft)

    def _index(self, draft: CustomerDraft) -> None:
        if id(draft) not in self._indexed:
            self._indexed.add(id(draft))
            self.drafts.append(draft)
        if draft.row.get("external_id"):
            self.by_external[draft.row["external_id"]] = draft
        if draft.row.get("phone"):
            self.by_phone[draft.row["phone"]] = draft

    def match(self, clean: dict) -> CustomerDraft | None:
        """The draft a cleaned body updates: by external id, else by phone; raise on conflict."""
        columns = clean["columns"]
        ext, phone = columns.get("external_id"), columns.get("phone")
        by_ext = self.by_external.get(ext) if ext else None
        by_phone = self.by_phone.get(phone) if phone else None
        if by_ext is not None:
            if by_phone is not None and by_phone is not by_ext:
                raise ValidationError(
                    f"{phone} already belongs to another customer "
                    f"({by_phone.row.get('name')}{_ref(by_phone)})",
                    "phone",
                )
            return by_ext
        if by_phone is not None:
            other = by_phone.row.get("external_id")
            if ext and other and other != ext:
                raise ValidationError(
                    f"{phone} already belongs to the customer with external id '{other}'",
                    "phone",
                )
            return by_phone
        return None

    def apply(self, clean: dict) -> tuple[CustomerDraft, str]:
        """Apply one cleaned body; answer its draft and created | updated | unchanged."""
        draft = self.match(clean)
        columns = clean["columns"]
        changed = False
        if draft is None:
            errors = Errors()
            if not columns.get("name"):
                errors.add("name", "name is required")
            if not columns.get("phone"):
                errors.add("phone", "phone is required")
            errors.raise_if_any()
            row = {key: None for key in COLUMNS}
            row.update(birthday_md=None, notes="", joined_at=self.now)
            row.update(columns)
            if row["notes"] is None:
                row["notes"] = ""
            draft = CustomerDraft(id=None, row=row)
            changed = True
        else:
            for key, value in columns.items():
                if key == "notes" and value is None:
                    value = ""
                if draft.row.get(key) != value:
                    draft.row[key] = value
                    changed = True
        for name in clean["tags"] or ():
            if name not in draft.tags:
                draft.tags.add(name)
                changed = True
        for key, value in (clean["attributes"] or {}).items():
            if value is None:
                if key in draft.attrs:
                    del draft.attrs[key]
                    changed = True
            elif draft.attrs.get(key) != value:
                draft.attrs[key] = value
                changed = True
        for channel, granted in (clean["consent"] or {}).items():
            if draft.consent.get(channel) != granted:
                draft.consent[channel] = granted
                changed = True
        if draft.original is None and not draft.touched:
            outcome = "created"
        else:
            outcome = "updated" if changed else "unchanged"
        draft.touched = True
        self._index(draft)
        return draft, outcome

    def flush(self, write: bool = True) -> None:
        """Write what changed against the stored state, set-based; set each draft's `net`
        (write=False: only the `net`, for an import's check, which saves nothing)."""
        if not write:
            for d in self.drafts:
                d.net = "created" if d.original is None else _net_change(d)
                d.remember()
            return
        now, store_id = self.now, self.store.id
        new = [d for d in self.drafts if d.id is None]
        if new:
            rows = [dict(d.row, store=store_id, created_at=now, updated_at=now) for d in new]
            for start in range(0, len(rows), 500):
                bulk_insert(Customer, rows[start : start + 500])
            phones = [d.row["phone"] for d in new]
            ids = {row["phone"]: row["id"] for row in _customers_by_keys(store_id, phones, [])}
            for d in new:
                d.id = ids[d.row["phone"]]
        links, attrs, removed, consents = [], [], [], []
        for d in self.drafts:
            if d.original is None:
                d.net = "created"
                original, original_attrs, original_consent = {}, {}, {}
            else:
                original, original_attrs = d.original, d.original_attrs
                original_consent = d.original_consent
                values = {k: v for k, v in d.row.items() if k != "id" and original.get(k) != v}
                d.net = "updated" if values else "unchanged"
                if values:
                    values["updated_at"] = now
                    Customer.update(values).where(Customer.id == d.id).execute()
            for name in sorted(d.tags - d.original_tags):
                links.append((d, name))
            for key, value in d.attrs.items():
                if original_attrs.get(key) != value:
                    attrs.append({"customer": d.id, "key": key, "value": value})
            gone = [k for k in original_attrs if k not in d.attrs]
            if gone:
                removed.append((d.id, gone))
            for channel, granted in d.consent.items():
                if original_consent.get(channel) != granted:
                    consents.append(
                        {"customer": d.id, "channel": channel, "granted": granted, "at": now}
                    )
            if d.net == "unchanged" and (
                d.tags != d.original_tags
                or d.attrs != original_attrs
                or d.consent != original_consent
            ):
                d.net = "updated"
        if links:
            tag_ids = self.lookups.ensure_tags({name for _, name in links}, now)
            rows = [
                {"customer": d.id, "tag": tag_ids[n], "source": self.source[:20], "added_at": now}
                for d, n in links
            ]
            for start in range(0, len(rows), 500):
                bulk_insert(CustomerTag, rows[start : start + 500], " ON CONFLICT DO NOTHING")
        for customer_id, keys in removed:
            CustomerAttribute.delete().where(
                (CustomerAttribute.customer == customer_id) & CustomerAttribute.key.in_(keys)
            ).execute()
        for start in range(0, len(attrs), 500):
            bulk_insert(
                CustomerAttribute,
                attrs[start : start + 500],
                ' ON CONFLICT ("customer_id", "key") DO UPDATE SET "value" = EXCLUDED."value"',
            )
        staff_id = self.staff.id if self.staff else None
        for start in range(0, len(consents), 500):
            chunk = [dict(c, source=self.source[:40]) for c in consents[start : start + 500]]
            bulk_insert(
                Consent,
                chunk,
                ' ON CONFLICT ("customer_id", "channel") DO UPDATE SET "granted" = EXCLUDED."granted",'
                ' "source" = EXCLUDED."source", "at" = EXCLUDED."at"',
            )
            bulk_insert(ConsentChange, [dict(c, staff=staff_id) for c in chunk])
        for d in self.drafts:
            d.remember()


def _net_change(d: CustomerDraft) -> str:
    """updated or unchanged: a stored customer's draft against what was loaded."""
    original = d.original or {}
    changed = any(original.get(k) != v for k, v in d.row.items() if k != "id") or (
        d.tags != d.original_tags or d.attrs != d.original_attrs or d.consent != d.original_consent
    )
    return "updated" if changed else "unchanged"


def _ref(draft: CustomerDraft) -> str:
    ext = draft.row.get("external_id")
    return f", external id '{ext}'" if ext else (f", id {draft.id}" if draft.id else "")


def upsert_customer(
    store: Store,
    data: dict,
    now: datetime,
    source: str = "api",
    staff: Staff | None = None,
    create_missing_tags: bool = True,
) -> tuple[Customer, bool]:
    """Create or update one customer (by external id, else phone); answer it and created?."""
    lookups = StoreLookups(store)
    clean = clean_customer(store, data, lookups, create_missing_tags, now)
    for attempt in range(2):
        try:
            with db.atomic():
                batch = CustomerBatch(store, now, source=source, staff=staff, lookups=lookups)
                batch.prefetch([clean])
                draft, outcome = batch.apply(clean)
                batch.flush()
            break
        except pw.IntegrityError:
            # Another writer created the same phone or external id meanwhile: match it instead.
            if attempt:
                raise
    if outcome == "created":
        from app.services import loyalty

        loyalty.credit_signup(Customer.get_by_id(draft.id), now)
    return Customer.get_by_id(draft.id), outcome == "created"


def find_customer(store: Store, ref: dict) -> Customer | None:
    """The customer of this store named by {"id"} | {"external_id"} | {"phone"}, or None."""
    if not isinstance(ref, dict):
        return None
    query = Customer.select().where(Customer.store == store.id)
    if ref.get("id") not in (None, ""):
        try:
            cid = int(str(ref["id"]).strip())
        except ValueError:
            return None
        return query.where(Customer.id == cid).first()
    if ref.get("external_id") not in (None, ""):
        return query.where(Customer.external_id == str(ref["external_id"]).strip()).first()
    if ref.get("phone") not in (None, ""):
        try:
            phone = normalize_phone(ref["phone"], store.region)
        except ValueError:
            return None
        return query.where(Customer.phone == phone).first()
    return None


def resolve_customer(store: Store, ref, field_name: str = "customer") -> Customer:
    """find_customer, or a ValidationError that says what was not found."""
    if not isinstance(ref, dict) or not any(
        ref.get(k) not in (None, "") for k in ("id", "external_id", "phone")
    ):
        raise ValidationError(
            'give the customer as {"id"}, {"external_id"} or {"phone"}', field_name
        )
    customer = find_customer(store, ref)
    if customer is None:
        key = next(k for k in ("id", "external_id", "phone") if ref.get(k) not in (None, ""))
        raise ValidationError(
            f"no customer with {key.replace('_', ' ')} '{str(ref[key])[:60]}' in this store",
            field_name,
        )
    return customer


def set_consent(
    customer: Customer,
    channel: str,
    granted: bool,
    source: str,
    now: datetime,
    staff: Staff | None = None,
) -> None:
    """Grant or withdraw consent for one channel, keeping the history."""
    if channel not in CHANNELS:
        raise ValidationError(f"unknown channel (use {', '.join(CHANNELS)})", "channel")
    with db.atomic():
        current = Consent.get_or_none(
            (Consent.customer == customer.id) & (Consent.channel == channel)
        )
        if current is not None and current.granted == bool(granted):
            return
        Consent.insert(
            customer=customer.id, channel=channel, granted=bool(granted), source=source, at=now
        ).on_conflict(
            conflict_target=(Consent.customer, Consent.channel),
            preserve=(Consent.granted, Consent.source, Consent.at),
        ).execute()
        ConsentChange.create(
            customer=customer.id,
            channel=channel,
            granted=bool(granted),
            source=source,
            staff=staff.id if staff else None,
            at=now,
        )


def add_tags(
    customer: Customer,
    names: list[str],
    now: datetime,
    source: str = "manual",
    create_missing: bool = True,
) -> list[str]:
    """Tag a customer; answer the names that were unknown (and skipped) when not creating."""
    names = split_tags(names)
    if not names:
        return []
    store = Store.get_by_id(customer.store_id)
    lookups = StoreLookups(store)
    with db.atomic():
        if create_missing:
            known = lookups.ensure_tags(set(names), now)
            unknown = []
        else:
            known = lookups.tags()
            unknown = [n for n in names if n not in known]
        rows = [
            {"customer": customer.id, "tag": known[n], "source": source[:20], "added_at": now}
            for n in names
            if n in known
        ]
        if rows:
            CustomerTag.insert_many(rows).on_conflict_ignore().execute()
    return unknown


def remove_tags(customer: Customer, names: list[str], now: datetime) -> None:
    """Take tags off a customer (unknown names are ignored)."""
    names = split_tags(names)
    if not names:
        return
    tag_ids = Tag.select(Tag.id).where((Tag.store == customer.store_id) & Tag.name.in_(names))
    CustomerTag.delete().where(
        (CustomerTag.customer == customer.id) & CustomerTag.tag.in_(tag_ids)
    ).execute()


def set_attributes(customer: Customer, attrs: dict) -> None:
    """Set custom attributes (a blank value removes the attribute)."""
    errors = Errors()
    cleaned = _clean_attributes(attrs, errors)
    errors.raise_if_any()
    with db.atomic():
        removed = [k for k, v in cleaned.items() if v is None]
        if removed:
            CustomerAttribute.delete().where(
                (CustomerAttribute.customer == customer.id) & CustomerAttribute.key.in_(removed)
            ).execute()
        rows = [
            {"customer": customer.id, "key": k, "value": v}
            for k, v in cleaned.items()
            if v is not None
        ]
        if rows:
            CustomerAttribute.insert_many(rows).on_conflict(
                conflict_target=(CustomerAttribute.customer, CustomerAttribute.key),
                preserve=(CustomerAttribute.value,),
            ).execute()


def customer_tags(customer: Customer) -> list[str]:
    """The customer's tag names, sorted."""
    return sorted(
        t.name
        for t in Tag.select(Tag.name).join(CustomerTag).where(CustomerTag.customer == customer.id)
    )


def customer_dict(customer: Customer) -> dict:
    """The JSON form of a customer used by the API."""
    attributes = {
        a.key: a.value
        for a in CustomerAttribute.select(CustomerAttribute.key, CustomerAttribute.value).where(
            CustomerAttribute.customer == customer.id
        )
    }
    consent = {
        c.channel: bool(c.granted)
        for c in Consent.select(Consent.channel, Consent.granted).where(
            Consent.customer == customer.id
        )
    }
    staff_email = None
    if customer.assigned_staff_id:
        staff = Staff.get_or_none(Staff.id == customer.assigned_staff_id)
        staff_email = staff.email if staff else None
    store = Store.get_by_id(customer.store_id)
    return {
        "id": customer.id,
        "external_id": customer.external_id,
        "name": customer.name,
        "phone": customer.phone,
        "gender": customer.gender,
        "birthday": customer.birthday.isoformat() if customer.birthday else None,
        "source": customer.source,
        "level": customer.level,
        "tags": customer_tags(customer),
        "attributes": attributes,
        "assigned_staff": staff_email,
        "consent": consent,
        "email": customer.email,
        "line_id": customer.line_id,
        "joined_at": _iso(customer.joined_at),
        "first_visit_at": _iso(customer.first_visit_at),
        "last_visit_at": _iso(customer.last_visit_at),
        "visit_count": customer.visit_count,
        "total_spend": str(Decimal(customer.total_spend or 0).quantize(Decimal("0.01"))),
        "points": customer.points,
        "store": store.key,
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@dataclass
class CustomerFilter:
    """The client list's filters: a name or phone search and tags (all of them, or any)."""

    q: str = ""
    tag_ids: list[int] = field(default_factory=list)
    match: str = "all"

    def is_empty(self) -> bool:
        """True when nothing narrows the list."""
        return not self.q and not self.tag_ids


def store_tags(store_id: int, ids: list[int]) -> list[int]:
    """The ids among these that are tags of this store (another store's are dropped)."""
    if not ids:
        return []
    found = {t.id for t in Tag.select(Tag.id).where((Tag.store == store_id) & Tag.id.in_(ids))}
    return [i for i in dict.fromkeys(ids) if i in found]


def filtered_customers(query: pw.Select, flt: CustomerFilter, region: str) -> pw.Select:
    """A customer query narrowed by the list's search and its tags (all, or any)."""
    from app.services import followups as followup_service

    if flt.q:
        query = query.where(followup_service.customer_match(flt.q, region))
    if flt.tag_ids and flt.match == "any":
        tagged = CustomerTag.select(CustomerTag.customer).where(CustomerTag.tag.in_(flt.tag_ids))
        query = query.where(Customer.id.in_(tagged))
    elif flt.tag_ids:
        for tag_id in flt.tag_ids:
            tagged = CustomerTag.select(CustomerTag.customer).where(CustomerTag.tag == tag_id)
            query = query.where(Customer.id.in_(tagged))
    return query


def bulk_tag(
    store: Store, flt: CustomerFilter, tag: Tag, action: str, staff: Staff | None, now: datetime
) -> int:
    """Add or remove one tag on every client of the store the filters match (set-based, the
    same INSERT … SELECT / DELETE … IN as the tags page); answer how many clients changed."""
    from app.services import audit, tagging

    if action not in ("add", "remove"):
        raise ValidationError("choose add or remove", "action")
    matched = filtered_customers(
        Customer.select().where(Customer.store == store.id), flt, store.region
    )
    with db.atomic():
        n = tagging.apply_tag(store, matched, tag, action, now, "bulk")
        detail = {"count": n, "q": flt.q, "tags": flt.tag_ids, "match": flt.match}
        audit.record(staff, store, f"tag.bulk_{action}", "tag", tag.id, detail, now)
    return n
