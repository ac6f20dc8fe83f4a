"""Importing customers, cards and events from CSV or Excel, in batches, with a per-row report."""

import csv
import hashlib
import io
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import peewee as pw
from charset_normalizer import from_bytes
from flask_babel import lazy_gettext as _l

from app.db import db, is_postgres
from app.models import Staff, Store
from app.models.events import EVENT_TYPES
from app.services import cards as card_service
from app.services import customers as customer_service
from app.services import events as event_service
from app.services import loyalty
from app.services.validation import ValidationError, blank

log = logging.getLogger(__name__)

KINDS = ("customers", "cards", "events")
ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "gbk", "big5", "cp950", "tis-620", "cp874")
_DETECT = ["utf_8", "gb18030", "big5", "cp950", "tis_620", "cp874", "cp1252"]
MAX_FIELD = 1_000_000
BATCH_SIZE = 1000

# Target fields per kind, with the header names (English, Chinese, Thai, Malay) they come under.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "external_id": (
            "external id",
            "id",
            "customer id",
            "member id",
            "member no",
            "会员编号",
            "會員編號",
            "客户编号",
            "客戶編號",
            "编号",
            "編號",
            "会员号",
            "會員號",
            "รหัสลูกค้า",
            "รหัสสมาชิก",
            "id pelanggan",
            "no ahli",
        ),
        "name": (
            "name",
            "full name",
            "customer name",
            "customer",
            "姓名",
            "名字",
            "客户姓名",
            "客戶姓名",
            "顾客姓名",
            "顧客姓名",
            "会员姓名",
            "會員姓名",
            "ชื่อ",
            "ชื่อลูกค้า",
            "ชื่อ-นามสกุล",
            "ชื่อนามสกุล",
            "nama",
            "nama pelanggan",
            "nama penuh",
        ),
        "phone": (
            "phone",
            "mobile",
            "tel",
            "telephone",
            "phone number",
            "mobile number",
            "contact",
            "whatsapp number",
            "手机",
            "手机号",
            "手机号码",
            "手機",
            "手機號碼",
            "电话",
            "電話",
            "联系电话",
            "聯絡電話",
            "聯繫電話",
            "เบอร์โทร",
            "เบอร์โทรศัพท์",
            "โทรศัพท์",
            "เบอร์",
            "มือถือ",
            "telefon",
            "no telefon",
            "nombor telefon",
            "no tel",
            "hp",
            "no hp",
        ),
        "gender": ("gender", "sex", "性别", "性別", "เพศ", "jantina"),
        "birthday": (
            "birthday",
            "birth date",
            "date of birth",
            "dob",
            "birthdate",
            "生日",
            "出生日期",
            "วันเกิด",
            "tarikh lahir",
            "hari jadi",
        ),
        "tags": (
            "tags",
            "tag",
            "labels",
            "label",
            "标签",
            "標籤",
            "標簽",
            "แท็ก",
            "ป้ายกำกับ",
            "แท็ก",
            "label pelanggan",
        ),
        "source": (
            "source",
            "channel",
            "acquisition",
            "来源",
            "來源",
            "渠道",
            "客户来源",
            "客戶來源",
            "แหล่งที่มา",
            "ที่มา",
            "sumber",
        ),
        "level": (
            "level",
            "member level",
            "tier",
            "membership",
            "等级",
            "等級",
            "会员等级",
            "會員等級",
            "ระดับ",
            "ระดับสมาชิก",
            "tahap",
            "peringkat",
        ),
        "email": (
            "email",
            "e-mail",
            "email address",
            "邮箱",
            "郵箱",
            "电子邮件",
            "電子郵件",
            "電郵",
            "อีเมล",
            "อีเมล์",
            "emel",
        ),
        "line_id": ("line", "line id", "lineid", "ไลน์", "ไอดีไลน์"),
        "assigned_staff": (
            "staff",
            "assigned staff",
            "assigned to",
            "consultant",
            "专属顾问",
            "專屬顧問",
            "负责人",
            "負責人",
            "顾问",
            "顧問",
            "พนักงาน",
            "พนักงานดูแล",
            "kakitangan",
        ),
        "joined_at": (
            "joined",
            "joined at",
            "join date",
            "registered",
            "registration date",
            "注册时间",
            "註冊時間",
            "注册日期",
            "入会日期",
            "入會日期",
            "วันที่สมัคร",
            "tarikh daftar",
            "tarikh sertai",
        ),
        "notes": (
            "notes",
            "note",
            "remark",
            "remarks",
            "comment",
            "备注",
            "備註",
            "หมายเหตุ",
            "catatan",
        ),
        "consent.whatsapp": ("whatsapp", "whatsapp consent", "consent whatsapp"),
        "consent.line": ("line consent", "consent line"),
        "consent.sms": ("sms", "sms consent", "consent sms"),
        "consent.email": ("email consent", "consent email"),
    },
    "cards": {
        "external_id": (
            "external id",
            "card id",
            "card no",
            "card number",
            "id",
            "卡号",
            "卡號",
            "会员卡号",
            "會員卡號",
            "เลขบัตร",
            "รหัสบัตร",
            "no kad",
        ),
        "customer.phone": (
            "phone",
            "mobile",
            "tel",
            "customer phone",
            "手机",
            "手机号",
            "手機",
            "電話",
            "电话",
            "เบอร์โทร",
            "โทรศัพท์",
            "telefon",
            "no telefon",
        ),
        "customer.external_id": (
            "customer id",
            "member id",
            "customer external id",
            "会员编号",
            "會員編號",
            "客户编号",
            "客戶編號",
            "รหัสลูกค้า",
            "id pelanggan",
        ),
        "product": (
            "product",
            "sku",
            "card product",
            "card type",
            "card",
            "卡项",
            "卡項",
            "卡类型",
            "卡種",
            "卡类",
            "产品",
            "ประเภทบัตร",
            "บัตร",
            "produk",
            "jenis kad",
        ),
        "balance": ("balance", "余额", "餘額", "卡内余额", "ยอดคงเหลือ", "ยอดเงิน", "baki"),
        "remaining_uses": (
            "remaining uses",
            "uses left",
            "remaining",
            "uses",
            "剩余次数",
            "剩餘次數",
            "次数",
            "次數",
            "ครั้งที่เหลือ",
            "จำนวนครั้ง",
            "baki guna",
        ),
        "expires_on": (
            "expiry",
            "expires",
            "expires on",
            "expiry date",
            "valid until",
            "到期日",
            "到期日期",
            "有效期至",
            "有效期",
            "วันหมดอายุ",
            "tarikh luput",
        ),
        "issued_at": (
            "issued",
            "issued at",
            "issue date",
            "开卡日期",
            "開卡日期",
            "开卡时间",
            "วันที่ออกบัตร",
            "tarikh dikeluarkan",
        ),
    },
    "events": {
        "external_id": (
            "external id",
            "event id",
            "order id",
            "order no",
            "receipt no",
            "invoice no",
            "id",
            "订单号",
            "訂單號",
            "订单编号",
            "訂單編號",
            "单号",
            "單號",
            "เลขที่คำสั่งซื้อ",
            "เลขที่ใบเสร็จ",
            "no pesanan",
            "no resit",
        ),
        "type": ("type", "event type", "event", "类型", "類型", "ประเภท", "jenis"),
        "customer.phone": (
            "phone",
            "mobile",
            "tel",
            "customer phone",
            "手机",
            "手机号",
            "手機",
            "電話",
            "电话",
            "เบอร์โทร",
            "โทรศัพท์",
            "telefon",
            "no telefon",
        ),
        "customer.external_id": (
            "customer id",
            "member id",
            "customer external id",
            "会员编号",
            "會員編號",
            "客户编号",
            "客戶編號",
            "รหัสลูกค้า",
            "id pelanggan",
        ),
        "occurred_at": (
            "date",
            "time",
            "datetime",
            "occurred at",
            "visit date",
            "order date",
            "日期",
            "时间",
            "時間",
            "消费时间",
            "消費時間",
            "到店时间",
            "到店時間",
            "วันที่",
            "เวลา",
            "tarikh",
            "masa",
        ),
        "amount": (
            "amount",
            "total",
            "paid",
            "金额",
            "金額",
            "消费金额",
            "消費金額",
            "实付",
            "實付",
            "จำนวนเงิน",
            "ยอด",
            "ยอดเงิน",
            "jumlah",
            "amaun",
        ),
        "item.sku": (
            "sku",
            "product code",
            "item sku",
            "item code",
            "商品编码",
            "商品編號",
            "商品编号",
            "รหัสสินค้า",
            "kod produk",
        ),
        "item.name": (
            "item",
            "product",
            "service",
            "商品",
            "服务",
            "服務",
            "项目",
            "項目",
            "สินค้า",
            "บริการ",
            "perkhidmatan",
            "produk",
        ),
        "item.quantity": ("qty", "quantity", "数量", "數量", "จำนวน", "kuantiti"),
        "item.price": ("price", "unit price", "单价", "單價", "ราคา", "harga"),
        "card.external_id": (
            "card id",
            "card no",
            "card number",
            "卡号",
            "卡號",
            "เลขบัตร",
            "no kad",
        ),
        "card.uses": ("card uses", "uses", "次数", "次數", "划卡次数", "劃卡次數"),
        "card.amount": ("card amount", "扣卡金额", "扣卡金額"),
        "staff": (
            "staff",
            "served by",
            "stylist",
            "服务人员",
            "服務人員",
            "技师",
            "技師",
            "美容师",
            "美容師",
            "พนักงาน",
            "kakitangan",
        ),
        "appointment_at": (
            "appointment",
            "appointment at",
            "appointment time",
            "预约时间",
            "預約時間",
            "วันนัด",
            "temujanji",
        ),
    },
}
_COMMON_LABELS = {
    "name": _l("Name"),
    "phone": _l("Phone"),
    "gender": _l("Gender"),
    "birthday": _l("Birthday"),
    "tags": _l("Tags"),
    "source": _l("Source"),
    "level": _l("Member level"),
    "email": _l("E-mail"),
    "line_id": _l("LINE ID"),
    "assigned_staff": _l("Assigned staff"),
    "joined_at": _l("Joined"),
    "notes": _l("Notes"),
    "consent.whatsapp": _l("WhatsApp consent"),
    "consent.line": _l("LINE consent"),
    "consent.sms": _l("SMS consent"),
    "consent.email": _l("E-mail consent"),
    "customer.phone": _l("Client's phone"),
    "customer.external_id": _l("Client's external id"),
    "customer.id": _l("Client id"),
    "product": _l("Card product"),
    "balance": _l("Balance"),
    "remaining_uses": _l("Remaining uses"),
    "expires_on": _l("Expires on"),
    "issued_at": _l("Issued on"),
    "type": _l("Type"),
    "occurred_at": _l("Date and time"),
    "amount": _l("Amount"),
    "item.sku": _l("Product code (SKU)"),
    "item.name": _l("Product or service"),
    "item.quantity": _l("Quantity"),
    "item.price": _l("Unit price"),
    "card.external_id": _l("Card number"),
    "card.uses": _l("Card uses"),
    "card.amount": _l("Amount taken from the card"),
    "staff": _l("Staff"),
    "appointment_at": _l("Appointment time"),
}
_EXTERNAL_ID_LABELS = {
    "customers": _l("External id (member number)"),
    "cards": _l("Card number"),
    "events": _l("Order or receipt number"),
}


def field_labels(kind: str) -> dict[str, str]:
    """Each field a column may be mapped to, with its label in the viewer's language."""
    return {
        target: str(
            _EXTERNAL_ID_LABELS[kind] if target == "external_id" else _COMMON_LABELS[target]
        )
        for target in fields(kind)
    }


REQUIRED = {
    "customers": (("name", "phone", "external_id"),),
    "cards": (("product",), ("customer.phone", "customer.external_id", "customer.id")),
    "events": (("customer.phone", "customer.external_id", "customer.id"),),
}
EXTRA_FIELDS = {"cards": ("customer.id",), "events": ("customer.id",), "customers": ()}
TYPE_ALIASES = {
    "purchase": "purchase",
    "sale": "purchase",
    "order": "purchase",
    "消费": "purchase",
    "消費": "purchase",
    "购买": "purchase",
    "購買": "purchase",
    "ซื้อ": "purchase",
    "pembelian": "purchase",
    "service": "service_completed",
    "服务": "service_completed",
    "服務": "service_completed",
    "บริการ": "service_completed",
    "perkhidmatan": "service_completed",
    "visit": "visit",
    "到店": "visit",
    "เยี่ยม": "visit",
    "lawatan": "visit",
    "card": "card_used",
    "划卡": "card_used",
    "劃卡": "card_used",
    "appointment": "appointment_booked",
    "booking": "appointment_booked",
    "预约": "appointment_booked",
    "預約": "appointment_booked",
    "นัด": "appointment_booked",
    "temujanji": "appointment_booked",
    "cancelled": "appointment_cancelled",
    "取消预约": "appointment_cancelled",
    "取消預約": "appointment_cancelled",
    "refund": "refund",
    "退款": "refund",
    "คืนเงิน": "refund",
    "top up": "top_up",
    "topup": "top_up",
    "充值": "top_up",
    "เติมเงิน": "top_up",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """A cell value that a spreadsheet will not run as a formula (leading apostrophe)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    result = str(value)
    if result.startswith(_FORMULA_START):
        return "'" + result
    return result


def _unsafe(value: str) -> str:
    """Undo csv_safe on a re-uploaded cell, so a fixed rejected row imports as it was."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


@dataclass
class Table:
    """A sheet read from a file: header names and rows, with each row's line in the file."""

    headers: list[str]
    rows: list[list]
    lines: list[int]
    encoding: str | None = None
    delimiter: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, index: int) -> dict:
        """Row `index` as header → value."""
        values = self.rows[index]
        return {h: (values[i] if i < len(values) else None) for i, h in enumerate(self.headers)}

    def preview(self, count: int = 5) -> list[dict]:
        """The first rows as header → value, for the mapping page."""
        return [self.record(i) for i in range(min(count, len(self.rows)))]


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as exc:
            raise ValueError(f"The file could not be read as {encoding}: {exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:200_000], cp_isolation=_DETECT).best()
    if best is None:
        raise ValueError(
            "The file's character encoding could not be recognised; "
            "choose it (UTF-8, GBK, Big5 or TIS-620) and upload again."
        )
    name = best.encoding
    return data.decode(name, errors="replace"), name


def _sniff_delimiter(sample: str) -> str:
    """The delimiter of the header line: the most frequent of , ; tab | outside quotes."""
    header = next((line for line in sample.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _unique_headers(raw: list) -> list[str]:
    headers, seen = [], {}
    for index, value in enumerate(raw):
        name = "" if value is None else re.sub(r"\s+", " ", str(value)).strip()
        name = name.lstrip("\ufeff") or f"column {index + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        headers.append(name)
    return headers


def read_table(source, filename: str = "", encoding: str | None = None) -> Table:
    """Read a CSV (any of the supported encodings, sniffed delimiter) or .xlsx file."""
    if isinstance(source, (str, Path)):
        filename = filename or str(source)
        data = Path(source).read_bytes()
    else:
        data = bytes(source)
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        return _read_xlsx(data)
    content, used = _decode(data, encoding)
    if "\x00" in content:
        content = content.replace("\x00", "")
    delimiter = _sniff_delimiter(content[:20_000])
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    rows, lines = [], []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if headers is None:
                headers = _unique_headers(values)
                continue
            rows.append([_unsafe(v) if v[:1] == "'" else v for v in values])
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise ValueError(f"Line {reader.line_num}: the file is not valid CSV ({exc}).") from None
    if headers is None:
        raise ValueError("The file is empty: it needs a header row and at least one row.")
    return Table(headers, rows, lines, encoding=used, delimiter=delimiter)


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ValueError(f"The Excel file could not be read ({exc.__class__.__name__}).") from None
    try:
        sheet = book.worksheets[0]
        headers = None
        rows, lines = [], []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if not any(not blank(v) for v in values):
                continue
            if headers is None:
                headers = _unique_headers(list(values))
                continue
            rows.append([_unsafe(v) if isinstance(v, str) else v for v in values])
            lines.append(number)
    finally:
        book.close()
    if headers is None:
        raise ValueError("The sheet is empty: it needs a header row and at least one row.")
    return Table(headers, rows, lines, encoding=None, delimiter=None)


def _norm(header: str) -> str:
    return re.sub(r"[\s_\-.:：/()（）*#]+", " ", str(header).lower()).strip()


def fields(kind: str) -> list[str]:
    """The fields a column may be mapped to for this kind (plus attributes.<key> for customers)."""
    return list(ALIASES[kind]) + list(EXTRA_FIELDS[kind])


def suggest_mapping(kind: str, headers: list[str]) -> dict[str, str | None]:
    """Column → field, recognising English, Chinese, Thai and Malay header names."""
    if kind not in KINDS:
        raise ValueError(f"Unknown import kind {kind!r} (use {', '.join(KINDS)}).")
    lookup = {}
    for target, names in ALIASES[kind].items():
        lookup[_norm(target)] = target
        for name in names:
            lookup.setdefault(_norm(name), target)
    mapping: dict[str, str | None] = {}
    used = set()
    for header in headers:
        target = lookup.get(_norm(header))
        if target and target not in used:
            mapping[header] = target
            used.add(target)
        elif kind == "customers" and not header.startswith("column "):
            mapping[header] = "attributes." + _attribute_key(header)
        else:
            mapping[header] = None
    return mapping


def _attribute_key(header: str) -> str:
    key = re.sub(r"[^\w .:/-]+", "_", header.strip())[:60].strip() or "attribute"
    return key


def check_mapping(kind: str, mapping: dict) -> list[str]:
    """Problems with a column mapping (unknown targets, a target twice, required ones missing)."""
    problems = []
    allowed = set(fields(kind))
    targets = [t for t in mapping.values() if t]
    for column, target in mapping.items():
        if not target:
            continue
        if target in allowed:
            continue
        if kind == "customers" and target.startswith("attributes.") and len(target) > 11:
            if customer_service.ATTRIBUTE_KEY.match(target[11:]):
                continue
        problems.append(f"Column '{column}' is mapped to an unknown field '{target}'.")
    for target in {t for t in targets if targets.count(t) > 1}:
        problems.append(f"More than one column is mapped to '{target}'.")
    for group in REQUIRED[kind]:
        if not any(t in targets for t in group):
            problems.append("Map a column to " + " or ".join(f"'{t}'" for t in group) + ".")
    return problems


@dataclass
class ImportOptions:
    """How an import runs: tags, plans, batches, progress, cancelling, resuming."""

    create_tags: bool = True
    triggers_plans: bool = False
    batch_size: int = BATCH_SIZE
    resume_from: int = 0
    on_progress: Callable[[int, int], None] | None = None
    on_batch: Callable[["ImportReport"], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    staff: Staff | None = None
    dry_run: bool = False
    carry: dict | None = None
    on_commit: Callable[["ImportReport", int, int, dict], None] | None = None


@dataclass
class RowError:
    """Why one row (by its line in the file) was rejected."""

    line: int
    field: str
    message: str
    raw: dict


@dataclass
class ImportReport:
    """What an import did, row by row."""

    kind: str
    total: int
    headers: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    landed: list[int] = field(default_factory=list)
    next_row: int = 0
    started_at_row: int = 0
    cancelled: bool = False
    dry_run: bool = False
    tags_created: dict[str, int] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        """Rows looked at by this run."""
        return self.next_row - self.started_at_row

    @property
    def finished(self) -> bool:
        """True when every row of the file has been processed."""
        return self.next_row >= self.total

    def reject(self, line: int, errors: list[dict], raw: dict, mapping: dict) -> None:
        """Record a rejected row with each of its bad fields."""
        self.rejected += 1
        columns = {}
        for column, target in mapping.items():
            if target:
                columns.setdefault(target, column)
        for error in errors or [{"field": "", "message": "the row could not be imported"}]:
            name = error.get("field") or ""
            column = columns.get(name) or columns.get(name.split("[")[0].split(".")[0])
            if column is None and name in ("customer", "card"):
                column = next((columns[t] for t in columns if t.startswith(name + ".")), None)
            if column is None and name.startswith("items"):
                column = columns.get("item." + name.rsplit(".", 1)[-1])
            if column is None and name.startswith("attributes."):
                column = next((c for c, t in mapping.items() if t == name), None)
            label = column or name
            message = f"{label}: {error['message']}" if label else error["message"]
            self.errors.append(RowError(line, name, message, raw))

    def count(self, outcome: str, line: int) -> None:
        """Count a row that landed."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.landed.append(line)

    def summary(self) -> str:
        """One line saying what happened."""
        verb = "would be" if self.dry_run else "were"
        parts = [
            f"{self.processed} of {self.total} {self.kind} rows processed",
            f"{self.created} created",
            f"{self.updated} updated",
            f"{self.unchanged} unchanged",
        ]
        if self.merged:
            parts.append(f"{self.merged} duplicates merged")
        parts.append(f"{self.rejected} rejected")
        text = ", ".join(parts)
        if self.dry_run:
            text = f"Check only (nothing {verb} saved): " + text
        if self.cancelled:
            text += f"; cancelled — resume from row {self.next_row + 1}"
        return text + "."

    def rejected_csv(self) -> str:
        """The rejected rows with an extra "error" column, ready to fix and upload again."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([csv_safe(h) for h in self.headers] + ["error"])
        by_line: dict[int, list[RowError]] = {}
        for error in self.errors:
            by_line.setdefault(error.line, []).append(error)
        for line, errors in sorted(by_line.items()):
            raw = errors[0].raw
            reason = "; ".join(e.message for e in errors)
            writer.writerow(
                [csv_safe(raw.get(h)) for h in self.headers] + [csv_safe(f"line {line}: {reason}")]
            )
        return out.getvalue()

    def to_dict(self) -> dict:
        """A JSON-ready form (without the raw rows) for a job's progress record."""
        return {
            "kind": self.kind,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "merged": self.merged,
            "rejected": self.rejected,
            "next_row": self.next_row,
            "cancelled": self.cancelled,
            "tags_created": dict(self.tags_created),
            "errors": [
                {"line": e.line, "field": e.field, "message": e.message} for e in self.errors
            ],
        }


def _cell(value):
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _row_values(table: Table, index: int, targets: list[tuple[int, str]]) -> dict:
    values = table.rows[index]
    width = len(values)
    result = {}
    for position, target in targets:
        if position < width:
            value = _cell(values[position])
            if value is not None:
                result[target] = value
    return result


def _targets(table: Table, mapping: dict) -> list[tuple[int, str]]:
    """(column position, field) for each mapped column of the table."""
    position = {h: i for i, h in enumerate(table.headers)}
    return [(position[c], t) for c, t in mapping.items() if t and c in position]


def customer_body(values: dict) -> dict:
    """A customer body from mapped cell values."""
    body: dict = {}
    for target, value in values.items():
        if target.startswith("attributes."):
            body.setdefault("attributes", {})[target[11:]] = str(value)
        elif target.startswith("consent."):
            body.setdefault("consent", {})[target[8:]] = value
        else:
            body[target] = value
    return body


def _ref(values: dict) -> dict:
    for key in ("external_id", "phone", "id"):
        if values.get(f"customer.{key}") is not None:
            return {key: values[f"customer.{key}"]}
    return {}


def _synthetic_id(prefix: str, values: dict, seen: dict) -> str:
    content = repr(sorted((k, str(v)) for k, v in values.items()))
    digest = hashlib.sha1(content.encode("utf-8")).hexdigest()[:20]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{prefix}-{digest}-{seen[digest]}"


def card_body(values: dict, seen: dict) -> dict:
    """A card body from mapped cell values (an id derived from the row when there is none)."""
    body = {"customer": _ref(values)}
    for key in ("product", "balance", "remaining_uses", "expires_on", "issued_at", "external_id"):
        if key in values:
            body[key] = values[key]
    if "external_id" not in body:
        body["external_id"] = _synthetic_id("import", values, seen)
    return body


def event_body(values: dict, seen: dict) -> dict:
    """An event body from mapped cell values (type and id derived when missing)."""
    body: dict = {"customer": _ref(values)}
    for key in ("occurred_at", "amount", "staff", "appointment_at", "external_id"):
        if key in values:
            body[key] = values[key]
    raw_type = values.get("type")
    if raw_type is None:
        body["type"] = "purchase" if "amount" in values else "visit"
    else:
        lowered = str(raw_type).strip().lower()
        body["type"] = (
            lowered.replace(" ", "_")
            if lowered.replace(" ", "_") in EVENT_TYPES
            else TYPE_ALIASES.get(lowered, str(raw_type))
        )
    sku = values.get("item.sku") or values.get("item.name")
    if sku is not None:
        item = {"sku": str(sku)[:64]}
        for key in ("name", "quantity", "price"):
            if values.get(f"item.{key}") is not None:
                item[key] = values[f"item.{key}"]
        body["items"] = [item]
    card = {}
    if values.get("card.external_id") is not None:
        card["external_id"] = values["card.external_id"]
    for key in ("uses", "amount"):
        if values.get(f"card.{key}") is not None:
            card[key] = values[f"card.{key}"]
    if card:
        body["card"] = card
    if "external_id" not in body:
        body["external_id"] = _synthetic_id("import", values, seen)
    return body


def import_rows(
    kind: str,
    store: Store,
    table: Table,
    mapping: dict,
    now: datetime,
    options: ImportOptions | dict | None = None,
) -> ImportReport:
    """Import a table in batches, each in one transaction; report every row's fate."""
    if kind not in KINDS:
        raise ValueError(f"Unknown import kind {kind!r} (use {', '.join(KINDS)}).")
    if isinstance(options, dict):
        options = ImportOptions(**options)
    options = options or ImportOptions()
    problems = check_mapping(kind, mapping)
    if problems:
        raise ValidationError([{"field": "mapping", "message": p} for p in problems])
    total = len(table.rows)
    start = max(0, min(options.resume_from, total))
    report = ImportReport(
        kind=kind,
        total=total,
        headers=list(table.headers),
        next_row=start,
        started_at_row=start,
        dry_run=options.dry_run,
    )
    state = _ImportState(store, now, options, mapping, targets=_targets(table, mapping))
    if kind == "customers":
        _customer_groups(state, table)
        state.restore(options.carry)
    else:
        _prime_synthetic(kind, state, table, start)
    size = max(1, options.batch_size)
    for begin in range(start, total, size):
        if options.should_cancel is not None and options.should_cancel():
            report.cancelled = True
            break
        end = min(begin + size, total)
        _run_batch(kind, state, table, begin, end, report)
        report.next_row = end
        if options.on_progress is not None:
            options.on_progress(end, total)
        if options.on_batch is not None:
            options.on_batch(report)
    log.info("import %s into %s: %s", kind, store.key, report.summary())
    return report


class _Rollback(Exception):
    """Raised to undo a dry-run batch."""


@dataclass
class _ImportState:
    store: Store
    now: datetime
    options: ImportOptions
    mapping: dict
    targets: list = field(default_factory=list)
    seen_keys: set = field(default_factory=set)
    groups: dict = field(default_factory=dict)
    anchor_of: dict = field(default_factory=dict)
    proxy: dict = field(default_factory=dict)
    deferred: dict = field(default_factory=dict)
    group_failed: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=dict)
    lookups: customer_service.StoreLookups | None = None
    new_keys: list = field(default_factory=list)
    created_tags: set = field(default_factory=set)

    def __post_init__(self):
        self.lookups = customer_service.StoreLookups(self.store)

    def carry(self) -> dict:
        """What later batches need from this one (JSON-ready), kept with the committed batch."""
        return {
            "keys": list(self.new_keys),
            "deferred": self.deferred,
            "group_failed": self.group_failed,
            "proxy": self.proxy,
        }

    def restore(self, carry: dict | None) -> None:
        """Take up the cross-batch state of the batches committed before a resume."""
        if not carry:
            return
        self.seen_keys = set(carry.get("keys") or ())
        self.deferred = {int(k): v for k, v in (carry.get("deferred") or {}).items()}
        self.group_failed = {int(k): v for k, v in (carry.get("group_failed") or {}).items()}
        self.proxy = {int(k): int(v) for k, v in (carry.get("proxy") or {}).items()}
        self.created_tags = set(carry.get("tags_created") or ())


def merge_carries(carries: list[dict]) -> dict:
    """The state after several committed batches, from their carries in file order."""
    keys: list = []
    merged: dict = {"keys": keys, "deferred": {}, "group_failed": {}, "proxy": {}}
    for carry in carries:
        keys.extend(carry.get("keys") or ())
        for name in ("deferred", "group_failed", "proxy"):
            if name in carry:
                merged[name] = carry[name]
    return merged


def _prime_synthetic(kind: str, state: "_ImportState", table: Table, start: int) -> None:
    """Count the id-less rows before a resume point, so repeated rows keep their own ids."""
    body = card_body if kind == "cards" else event_body
    for index in range(start):
        body(_row_values(table, index, state.targets), state.synthetic)


def _run_batch(kind: str, state: _ImportState, table: Table, begin: int, end: int, report):
    runner = {"customers": _customers_batch, "cards": _cards_batch, "events": _events_batch}[kind]
    for attempt in range(2):
        partial = ImportReport(kind=kind, total=report.total, headers=report.headers)
        before = _snapshot(state)
        try:
            with db.atomic():
                if is_postgres():
                    # Plan each lookup for its own values: a generic plan cached while the
                    # store was empty keeps scanning the whole table as the import fills it.
                    db.execute_sql("SET LOCAL plan_cache_mode = force_custom_plan")
                runner(state, table, begin, end, partial)
                if state.options.dry_run:
                    raise _Rollback
                if state.options.on_commit is not None:
                    state.options.on_commit(partial, begin, end, state.carry())
        except _Rollback:
            pass
        except pw.IntegrityError:
            # A concurrent writer took a phone or id this batch was creating: run it again.
            _rewind(state, before)
            state.lookups = customer_service.StoreLookups(state.store)
            if attempt:
                raise
            continue
        break
    if state.options.dry_run:
        state.lookups = customer_service.StoreLookups(state.store)
    for name in ("created", "updated", "unchanged", "merged", "rejected"):
        setattr(report, name, getattr(report, name) + getattr(partial, name))
    report.errors.extend(sorted(partial.errors, key=lambda e: e.line))
    report.landed.extend(sorted(partial.landed))
    add_tag_counts(report.tags_created, partial.tags_created)


def add_tag_counts(total: dict, more: dict) -> dict:
    """Add one batch's created tags (name → clients given it) into a running total."""
    for name, count in more.items():
        total[name] = total.get(name, 0) + int(count)
    return total


def _snapshot(state: "_ImportState") -> dict:
    """What a batch may change in the state, to undo it when the batch runs again (the keys
    the batch adds are undone through new_keys: copying every key seen is quadratic)."""
    state.new_keys = []
    return {
        "synthetic": dict(state.synthetic),
        "deferred": dict(state.deferred),
        "group_failed": dict(state.group_failed),
        "proxy": dict(state.proxy),
        "created_tags": set(state.created_tags),
    }


def _rewind(state: "_ImportState", before: dict) -> None:
    for name, value in before.items():
        setattr(state, name, value)
    state.seen_keys.difference_update(state.new_keys)
    state.new_keys = []


def _customer_groups(state: "_ImportState", table: Table) -> None:
    """Rows of the file that share an external id (or, without one, a phone): merged up front."""
    key_anchor: dict[str, int] = {}
    state.groups, state.anchor_of = {}, {}
    wanted = {t: p for p, t in state.targets if t in ("external_id", "phone")}
    ext_at, phone_at = wanted.get("external_id"), wanted.get("phone")
    for index, row in enumerate(table.rows):
        ext = _cell(row[ext_at]) if ext_at is not None and ext_at < len(row) else None
        phone = _cell(row[phone_at]) if phone_at is not None and phone_at < len(row) else None
        if ext is not None:
            key = "e:" + str(ext).strip()
        elif phone is not None:
            try:
                key = "p:" + customer_service.normalize_phone(phone, state.store.region)
            except ValueError:
                continue
        else:
            continue
        anchor = key_anchor.setdefault(key, index)
        if anchor != index:
            state.groups.setdefault(anchor, [anchor]).append(index)
            state.anchor_of[index] = anchor


def _clean_row(state: "_ImportState", table: Table, index: int) -> dict:
    body = customer_body(_row_values(table, index, state.targets))
    return customer_service.clean_customer(
        state.store, body, state.lookups, state.options.create_tags, state.now
    )


def _merge_cleans(cleans: list[dict]) -> dict:
    merged: dict = {"columns": {}, "tags": None, "attributes": None, "consent": None}
    for clean in cleans:
        merged["columns"].update(clean["columns"])
        if clean["tags"]:
            merged["tags"] = list(dict.fromkeys((merged["tags"] or []) + clean["tags"]))
        for key in ("attributes", "consent"):
            if clean[key] is not None:
                merged[key] = {**(merged[key] or {}), **clean[key]}
    return merged


def _group_clean(state: "_ImportState", table: Table, anchor: int, first: dict | None):
    """The merged body of a group's valid rows, and the index of its first valid row."""
    cleans, first_valid = [], None
    for member in state.groups[anchor]:
        if member == anchor:
            if first is None:
                continue
            clean = first
        else:
            try:
                clean = _clean_row(state, table, member)
            except ValidationError:
                continue
        cleans.append(clean)
        first_valid = member if first_valid is None else first_valid
    return (_merge_cleans(cleans), first_valid) if cleans else (None, None)


def _customers_batch(state: "_ImportState", table: Table, begin: int, end: int, report) -> None:
    store, options = state.store, state.options
    batch = customer_service.CustomerBatch(
        store, state.now, source="import", staff=options.staff, lookups=state.lookups
    )
    pending = []  # (index, clean or None, role)
    for index in range(begin, end):
        try:
            clean = _clean_row(state, table, index)
        except ValidationError as exc:
            report.reject(table.lines[index], exc.errors, table.record(index), state.mapping)
            if index in state.groups:
                # The first row of a group is bad: the group's good rows still land, once.
                merged, first_valid = _group_clean(state, table, index, None)
                if merged is not None:
                    state.proxy[index] = first_valid
                    pending.append((index, merged, "proxy"))
            continue
        if index in state.anchor_of:
            pending.append((index, None, "member"))
            continue
        if index in state.groups:
            clean, _ = _group_clean(state, table, index, clean)
        pending.append((index, clean, "own"))
    batch.prefetch([clean for _, clean, _ in pending if clean is not None])
    applied = []
    for index, clean, role in pending:
        if clean is None:
            applied.append((index, None, role))
            continue
        keys = _customer_keys(clean["columns"])
        try:
            target = batch.match(clean)
            duplicate = bool(keys & state.seen_keys) or (target is not None and target.touched)
            draft, _ = batch.apply(clean)
        except ValidationError as exc:
            if index in state.groups:
                state.group_failed[index] = exc.errors
            if role == "own":
                report.reject(table.lines[index], exc.errors, table.record(index), state.mapping)
            continue
        added = (keys | _customer_keys(draft.row)) - state.seen_keys
        state.seen_keys |= added
        state.new_keys.extend(added)
        applied.append((index, draft, "merged" if duplicate and role == "own" else role))
    report.tags_created = _new_tag_links(state, batch)
    batch.flush(write=not options.dry_run)
    if not options.dry_run:
        created = [d.id for d in batch.drafts if d.net == "created"]
        loyalty.credit_signups(store, created, state.now)
    for index, draft, role in applied:
        line = table.lines[index]
        if role == "proxy":
            state.deferred[state.proxy[index]] = draft.net
        elif role == "member":
            anchor = state.anchor_of[index]
            if anchor in state.group_failed:
                report.reject(line, state.group_failed[anchor], table.record(index), state.mapping)
            elif state.proxy.get(anchor) == index:
                report.count(state.deferred.pop(index, "merged"), line)
            else:
                report.count("merged", line)
        else:
            report.count(draft.net if role == "own" else role, line)


def _new_tag_links(state: "_ImportState", batch) -> dict[str, int]:
    """The tags this import creates (or, checking, would create), with how many clients of the
    batch get each; a tag an earlier batch created keeps counting."""
    given = Counter(name for d in batch.drafts for name in d.tags - d.original_tags)
    known = state.lookups.tags()
    state.created_tags |= {name for name in given if name not in known}
    return {name: n for name, n in given.items() if name in state.created_tags}


def _customer_keys(columns: dict) -> set:
    keys = set()
    if columns.get("phone"):
        keys.add("phone:" + columns["phone"])
    if columns.get("external_id"):
        keys.add("external_id:" + columns["external_id"])
    return keys


def _cards_batch(state: _ImportState, table: Table, begin: int, end: int, report) -> None:
    store = state.store
    for index in range(begin, end):
        line = table.lines[index]
        body = card_body(_row_values(table, index, state.targets), state.synthetic)
        existing = card_service.find_card(store, {"external_id": body["external_id"]})
        if existing is not None:
            report.count("unchanged", line)
            continue
        try:
            with db.atomic():
                card_service.issue_card(store, body, state.now, staff=state.options.staff)
        except ValidationError as exc:
            report.reject(line, exc.errors, table.record(index), state.mapping)
            continue
        report.count("created", line)


def _events_batch(state: _ImportState, table: Table, begin: int, end: int, report) -> None:
    store, options = state.store, state.options
    triggers = options.triggers_plans and not options.dry_run
    for index in range(begin, end):
        line = table.lines[index]
        body = event_body(_row_values(table, index, state.targets), state.synthetic)
        try:
            with db.atomic():
                _, created = event_service.record_event(
                    store,
                    body,
                    state.now,
                    source="import",
                    staff=options.staff,
                    triggers_plans=triggers,
                )
        except ValidationError as exc:
            report.reject(line, exc.errors, table.record(index), state.mapping)
            continue
        report.count("created" if created else "unchanged", line)


def import_file(kind: str, path: str, store: Store, now: datetime, **options) -> ImportReport:
    """Read a file, map its columns automatically and import it (the CLI's entry point)."""
    encoding = options.pop("encoding", None)
    table = read_table(path, filename=str(path), encoding=encoding)
    mapping = options.pop("mapping", None) or suggest_mapping(kind, table.headers)
    return import_rows(kind, store, table, mapping, now, ImportOptions(**options))
