"""The demo business: a Kuala Lumpur beauty salon and a Bangkok pet clinic with a year of history."""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import phonenumbers
from dateutil.relativedelta import relativedelta
from peewee import chunked

from app.db import db
from app.models import (
    CardLedger,
    CardProduct,
    Consent,
    ConsentChange,
    Customer,
    CustomerAttribute,
    CustomerCard,
    CustomerTag,
    Event,
    EventItem,
    PointsEntry,
    Staff,
    Store,
    Tag,
    Visit,
)
from app.models.events import VISIT_TYPES
from app.services import auth, loyalty, messaging, reports, stores

log = logging.getLogger(__name__)

SALON_KEY = "kl-salon"
CLINIC_KEY = "bkk-petclinic"
SEED = 20261124
BATCH = 1000
SIGNUP_POINTS = 50

# (key, email, name, role, stores, password)
STAFF = [
    (
        "owner",
        "meiling@bunga.example",
        "Lim Mei Ling 林美玲",
        "owner",
        ("kl", "bkk"),
        "revisit-owner",
    ),
    (
        "mgr_kl",
        "nurul@bunga.example",
        "Nurul Izzah binti Rahman",
        "manager",
        ("kl",),
        "revisit-manager",
    ),
    (
        "mgr_bkk",
        "siriporn@happypaws.example",
        "ศิริพร วงศ์สกุล (Siriporn)",
        "manager",
        ("bkk",),
        "revisit-manager",
    ),
    (
        "beautician",
        "aisyah@bunga.example",
        "Nur Aisyah binti Kamal",
        "employee",
        ("kl",),
        "revisit-staff",
    ),
    (
        "lash",
        "priya@bunga.example",
        "Priya a/p Subramaniam",
        "employee",
        ("kl",),
        "revisit-staff",
    ),
    ("stylist", "jason@bunga.example", "Jason Wong 黄志强", "employee", ("kl",), "revisit-staff"),
    (
        "nurse",
        "nattaya@happypaws.example",
        "ณัฐยา ศรีสุข (Nattaya)",
        "employee",
        ("bkk",),
        "revisit-staff",
    ),
    (
        "reception",
        "kittipong@happypaws.example",
        "กิตติพงษ์ ไชยพร (Kittipong)",
        "employee",
        ("bkk",),
        "revisit-staff",
    ),
]
LOGIN_KEYS = (("owner", "owner"), ("manager", "mgr_kl"), ("employee", "beautician"))


@dataclass(frozen=True)
class Service:
    sku: str
    name: str
    price: int
    staff: str


@dataclass(frozen=True)
class CardSpec:
    sku: str
    name: str
    kind: str
    price: int
    uses: int | None = None
    value: int | None = None
    valid_days: int | None = None
    service: str | None = None
    interval: int = 30


@dataclass
class StoreSpec:
    key: str
    short: str
    name: str
    timezone: str
    region: str
    currency: str
    locale: str
    member_day: int | None
    services: dict[str, Service]
    cards: dict[str, CardSpec]
    tags: list[tuple[str, str, str]]
    sources: list[tuple[str, int]]
    card_rotation: list[tuple[str, str]]
    hours: tuple[int, int]
    buyer_staff: str | None = None


def _services(*rows) -> dict[str, Service]:
    return {r[0]: Service(*r) for r in rows}


SALON = StoreSpec(
    key=SALON_KEY,
    short="kl",
    name="Bunga Beauty & Lash Studio",
    timezone="Asia/Kuala_Lumpur",
    region="MY",
    currency="MYR",
    locale="ms",
    member_day=18,
    services=_services(
        ("FACIAL", "Signature Facial", 168, "beautician"),
        ("LASH-EXT", "Lash extension (classic)", 188, "lash"),
        ("LASH-REFILL", "Lash refill", 98, "lash"),
        ("MANICURE", "Gel manicure", 65, "beautician"),
        ("PEDICURE", "Spa pedicure", 78, "beautician"),
        ("BROW", "Brow threading", 25, "beautician"),
        ("HAIRCUT", "Haircut & styling", 55, "stylist"),
        ("COLOUR", "Hair colour", 238, "stylist"),
        ("BLOWDRY", "Blow-dry", 45, "stylist"),
        ("SERUM", "Hydrating serum 30 ml", 129, "beautician"),
        ("LASH-CLEANSER", "Lash cleanser foam", 39, "lash"),
        ("SHAMPOO", "Keratin shampoo", 69, "stylist"),
    ),
    cards={
        "SV1000": CardSpec(
            "SV1000",
            "RM 1,000 Top-up Card",
            "stored_value",
            1000,
            value=1000,
            valid_days=365,
            interval=21,
        ),
        "SV2000": CardSpec(
            "SV2000",
            "RM 2,000 Top-up Card",
            "stored_value",
            2000,
            value=2000,
            valid_days=365,
            interval=21,
        ),
        "FACIAL10": CardSpec(
            "FACIAL10",
            "10× Signature Facial",
            "count",
            1380,
            uses=10,
            valid_days=365,
            service="FACIAL",
            interval=32,
        ),
        "LASH6": CardSpec(
            "LASH6",
            "6× Lash Refill",
            "count",
            498,
            uses=6,
            valid_days=180,
            service="LASH-REFILL",
            interval=18,
        ),
        "BLOWDRY3M": CardSpec(
            "BLOWDRY3M",
            "3-month unlimited blow-dry",
            "period",
            299,
            valid_days=90,
            service="BLOWDRY",
            interval=7,
        ),
    },
    tags=[
        ("VIP", "Value", "#b91c1c"),
        ("High value", "Value", "#c2410c"),
        ("New", "Lifecycle", "#15803d"),
        ("At risk", "Lifecycle", "#d97706"),
        ("Lash lover", "Interest", "#db2777"),
        ("Hair colour", "Interest", "#7c3aed"),
        ("Sensitive skin", "Skin", "#0e7490"),
        ("Bride-to-be", "Occasion", "#be185d"),
    ],
    sources=[
        ("Walk-in", 22),
        ("Instagram", 22),
        ("Facebook", 14),
        ("Google Maps", 14),
        ("Referral", 12),
        ("Grab", 6),
        ("Dianping/大众点评", 6),
        ("TikTok", 4),
    ],
    card_rotation=[
        ("LASH6", "low_uses"),
        ("FACIAL10", "expiring"),
        ("SV1000", "sv_low"),
        ("LASH6", "used_up"),
        ("LASH6", "expired"),
        ("SV2000", "sv_high"),
        ("BLOWDRY3M", "period_active"),
        ("FACIAL10", "active"),
        ("BLOWDRY3M", "period_expired"),
        ("FACIAL10", "low_uses"),
        ("SV1000", "sv_low"),
        ("FACIAL10", "used_up"),
    ],
    hours=(10, 20),
)

CLINIC = StoreSpec(
    key=CLINIC_KEY,
    short="bkk",
    name="Happy Paws Animal Clinic",
    timezone="Asia/Bangkok",
    region="TH",
    currency="THB",
    locale="th",
    member_day=None,
    services=_services(
        ("CHECKUP", "Health check", 600, "nurse"),
        ("VACCINE", "Vaccination", 900, "nurse"),
        ("DEWORM", "Deworming", 350, "nurse"),
        ("FLEA", "Flea & tick treatment", 450, "nurse"),
        ("GROOM", "Grooming", 650, "nurse"),
        ("DENTAL", "Dental cleaning", 3500, "nurse"),
        ("FOOD-CAT", "Prescription cat food 2 kg", 1250, "reception"),
        ("FOOD-DOG", "Dog food 3 kg", 990, "reception"),
        ("PET-SHAMPOO", "Medicated pet shampoo", 380, "reception"),
    ),
    cards={
        "SV5000": CardSpec(
            "SV5000",
            "฿5,000 Happy Paws wallet",
            "stored_value",
            5000,
            value=5000,
            valid_days=365,
            interval=30,
        ),
        "DEWORM3": CardSpec(
            "DEWORM3",
            "3× Deworming for cats",
            "count",
            900,
            uses=3,
            valid_days=180,
            service="DEWORM",
            interval=30,
        ),
        "GROOM12": CardSpec(
            "GROOM12",
            "12× Grooming",
            "count",
            6900,
            uses=12,
            valid_days=365,
            service="GROOM",
            interval=28,
        ),
    },
    tags=[
        ("VIP", "Value", "#b91c1c"),
        ("New", "Lifecycle", "#15803d"),
        ("At risk", "Lifecycle", "#d97706"),
        ("Cat", "Species", "#0369a1"),
        ("Dog", "Species", "#a16207"),
        ("Senior pet", "Care", "#6d28d9"),
        ("Allergy", "Care", "#be123c"),
    ],
    sources=[
        ("Walk-in", 25),
        ("LINE OA", 25),
        ("Facebook", 15),
        ("Google Maps", 18),
        ("Referral", 12),
        ("Grab", 5),
    ],
    card_rotation=[
        ("DEWORM3", "low_uses"),
        ("GROOM12", "expiring"),
        ("SV5000", "sv_low"),
        ("DEWORM3", "used_up"),
        ("DEWORM3", "expired"),
        ("SV5000", "sv_high"),
        ("GROOM12", "active"),
        ("GROOM12", "low_uses"),
    ],
    hours=(9, 19),
    buyer_staff="reception",
)


def _words(text: str) -> list[str]:
    return text.split("|")


def _pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(part.split(":")) for part in text.split("|")]


# Names as (display, romanised) so e-mail addresses look real.
MALAY_F = _words(
    "Nur Aisyah|Siti Nurhaliza|Nurul Huda|Farah Nadia|Aina Sofea|Nur Syafiqah|Amirah|Siti Khadijah|Intan Maisarah|Nabila|Alya Qistina|Puteri Balqis|Zulaikha|Hana Sofia|Wan Nur Izzati|Nur Iman|Aishah|Syazwani|Dayang Nurfarhana|Sharifah Nadhirah"
    "|Nur Ain|Siti Aminah|Nor Azlina|Fatin Najwa|Nurin Aqilah|Qistina|Maisarah|Sofea Irdina"
)
MALAY_M = _words(
    "Muhammad Hafiz|Ahmad Faizal|Mohd Azlan|Muhammad Amirul|Khairul Anuar|Syed Hakim|Ikmal Hisham|Mohd Firdaus|Adam Haikal|Luqman Hakim"
    "|Amir Hamzah|Faris|Haziq|Danial|Irfan|Hakimi|Zulkifli|Aiman"
)
MALAY_FATHER = _words(
    "Ahmad|Abdullah|Ismail|Rahman|Hassan|Othman|Yusof|Ibrahim|Zainal|Kamarudin|Razak|Salleh|Hamid|Aziz|Mokhtar"
    "|Abdul Rahman|Mohamad|Jamaluddin|Sulaiman|Hashim|Mahmud|Idris|Yaakob|Musa|Ramli|Harun|Omar"
    "|Jaafar|Daud|Zakaria|Rashid|Kassim|Shamsuddin|Nordin|Hussin"
)
CN_ROMAN_SURNAME = _words(
    "Tan|Lim|Lee|Wong|Ng|Ong|Chong|Goh|Teh|Chan|Yap|Liew|Khoo|Low|Cheah"
    "|Chua|Foo|Heng|Koh|Lau|Leong|Loh|Ho|Tay|Toh|Yeoh|Kwan|Choo|Phang|Soh"
)
CN_ROMAN_F = _words(
    "Mei Ling|Jia Hui|Xin Yi|Siew Ling|Pei Shan|Hui Min|Li Ying|Wei Ting|Shu Fen|Kar Mun|Yee Ling|Zi Xuan"
    "|Hui Wen|Jing Yi|Pei Yi|Sze Ching|Wai Yee|Ai Ling|Mun Yee|Xiao Wei"
)
CN_ROMAN_M = _words(
    "Wei Jie|Kah Wai|Chee Keong|Zhi Hao|Jun Wei|Kok Leong|Yong Sheng"
    "|Kah Hoe|Boon Keat|Jia Wei|Ming Hui|Chun Kit|Wai Keong|Yi Xiang"
)
HANS_SURNAME = _pairs(
    "王:wang|李:li|张:zhang|刘:liu|陈:chen|杨:yang|黄:huang|赵:zhao|周:zhou|吴:wu|林:lin|郭:guo"
    "|孙:sun|马:ma|朱:zhu|胡:hu|何:he|高:gao|罗:luo|梁:liang"
)
HANS_F = _pairs(
    "小红:xiaohong|静怡:jingyi|晓敏:xiaomin|丽娟:lijuan|佳怡:jiayi|雨涵:yuhan|思琪:siqi|婷婷:tingting|欣怡:xinyi|梦瑶:mengyao"
    "|诗涵:shihan|可馨:kexin|紫涵:zihan|慧敏:huimin|雪梅:xuemei|晓琳:xiaolin|嘉欣:jiaxin|若曦:ruoxi"
)
HANS_M = _pairs(
    "伟:wei|磊:lei|子轩:zixuan|浩然:haoran|俊杰:junjie|志强:zhiqiang|明轩:mingxuan|宇航:yuhang"
    "|建华:jianhua|博文:bowen"
)
HANT_SURNAME = _pairs(
    "陳:chen|林:lin|黃:huang|張:chang|李:lee|王:wang|吳:wu|劉:liu|蔡:tsai|楊:yang|鄭:cheng|謝:hsieh"
    "|許:hsu|何:ho|周:chou|郭:kuo|曾:tseng|賴:lai|廖:liao|徐:hsu"
)
HANT_F = _pairs(
    "美玲:meiling|淑芬:shufen|怡君:yichun|雅婷:yating|佩珊:peishan|詩涵:shihhan|宜蓁:yichen|曉雯:hsiaowen"
    "|佳穎:chiaying|欣妤:hsinyu|家瑜:chiayu|婉婷:wanting|靜宜:chingyi|郁婷:yuting"
)
HANT_M = _pairs(
    "志明:chihming|家豪:chiahao|建宏:chienhung|俊傑:chunchieh|冠宇:kuanyu|承翰:chenghan"
    "|宗翰:tsunghan|柏翰:pohan|彥廷:yenting"
)
INDIAN_F = _words(
    "Kavitha|Priya|Deepa|Shalini|Nisha|Revathi|Anusha|Sangeetha|Thivya|Malini|Geetha|Yamuna"
    "|Kalaivani|Suganya|Meena|Vanitha|Pavithra|Lakshmi"
)
INDIAN_M = _words(
    "Suresh|Ravi|Vinod|Arun|Ganesh|Prakash|Kumaresan|Saravanan|Rajesh|Vijay|Dinesh|Siva"
)
INDIAN_FATHER = _words(
    "Raman|Subramaniam|Krishnan|Murugan|Ganesan|Selvam|Rajendran|Muthu|Chandran|Pillai|Nair|Maniam"
    "|Ramasamy|Perumal|Gopal|Arumugam|Balakrishnan|Sinnathamby|Kandasamy|Velu"
)
THAI_F = _pairs(
    "สมหญิง:somying|สุภาพร:supaporn|วิไลวรรณ:wilaiwan|ณัฐธิดา:natthida|กนกวรรณ:kanokwan|ปิยะนุช:piyanuch|อรุณี:arunee|พิมพ์ชนก:pimchanok|ศิริพร:siriporn|จันทร์เพ็ญ:janpen|ชนิดา:chanida|รัตนา:rattana|ปวีณา:paweena|นภัสสร:napatsorn"
    "|ธิดารัตน์:thidarat|สุนิสา:sunisa|วรรณา:wanna|กาญจนา:kanchana|อัญชลี:anchalee|พัชรี:patcharee"
)
THAI_M = _pairs(
    "สมชาย:somchai|ธนากร:thanakorn|วีระพงษ์:weerapong|ประเสริฐ:prasert|อนุชา:anucha|กิตติศักดิ์:kittisak|ณัฐวุฒิ:nattawut|สุรชัย:surachai|พงศกร:pongsakorn|ชัยวัฒน์:chaiwat"
    "|วิชัย:wichai|สมศักดิ์:somsak|ปิยะพงษ์:piyapong|อภิชาติ:apichat|ธีรวัฒน์:theerawat"
)
THAI_SURNAME = _pairs(
    "ใจดี:jaidee|ศรีสุข:srisuk|วงศ์สวัสดิ์:wongsawat|แก้วประเสริฐ:kaewprasert|สุขสวัสดิ์:suksawat|ทองดี:thongdee|บุญมา:boonma|รัตนพันธ์:rattanaphan|จันทร์เจริญ:chancharoen|พรหมมา:phromma|เพชรรัตน์:petcharat|สายทอง:saithong"
    "|ศรีวงศ์:sriwong|มณีรัตน์:maneerat|ชัยมงคล:chaimongkol|สมบูรณ์:somboon|ปัญญาดี:panyadee"
    "|อินทร์แก้ว:inkaew|คงสุข:khongsuk|วัฒนกุล:wattanakul|เจริญผล:charoenphon|ศรีทอง:srithong"
    "|พึ่งบุญ:phuengboon|บุญเรือง:boonruang|ทองคำ:thongkham|นาคสวัสดิ์:naksawat|อ่อนศรี:onsri"
    "|สุวรรณศรี:suwannasri|แสงทอง:saengthong|กิตติวงศ์:kittiwong|ธนพัฒน์:thanaphat|เรืองศรี:ruangsri"
    "|ภูมิใจ:phumjai|ศักดิ์ดี:sakdee|มีสุข:meesuk|ทรัพย์มาก:submak"
)
EXPAT_F = _pairs(
    "Emily:emily|Sophie:sophie|Anna:anna|Chloé:chloe|Hannah:hannah|Laura:laura|Olivia:olivia"
    "|Charlotte:charlotte|Julia:julia|Emma:emma"
)
EXPAT_M = _pairs(
    "James:james|Daniel:daniel|Lukas:lukas|Thomas:thomas|Oliver:oliver|Pierre:pierre"
    "|Michael:michael|David:david|Ben:ben|Marco:marco"
)
EXPAT_SURNAME = _pairs(
    "Carter:carter|Wilson:wilson|Martin:martin|Schmidt:schmidt|Dubois:dubois|Müller:mueller"
    "|Smith:smith|Brown:brown|Taylor:taylor|Rossi:rossi|Jensen:jensen|Novak:novak|Walker:walker"
    "|Evans:evans|Fischer:fischer|Moreau:moreau|Kim:kim|Park:park"
)
# Japanese clients are written surname first, with a space, as on their cards.
JAPANESE_SURNAME = _pairs("田中:tanaka|佐藤:sato|鈴木:suzuki|高橋:takahashi|渡辺:watanabe|伊藤:ito")
JAPANESE_F = _pairs("由紀:yuki|美咲:misaki|陽子:yoko|愛:ai|さくら:sakura")
JAPANESE_M = _pairs("健:ken|翔太:shota|大輔:daisuke|拓也:takuya|直樹:naoki")
PET_NAMES = _words(
    "Mochi|Lucky|Coco|Bobo|ส้มโอ|ข้าวปั้น|Milo|Toffee|Nam Tan|Mali|Khao Niao|Peanut|Oreo|ไข่มุก|Kaimook|Tofu|Latte|Boba|มะม่วง|Leo|Luna|Ginger|Moo Ping|Snow"
)
CAT_BREEDS = _words("Scottish Fold|Persian|British Shorthair|Siamese|Domestic shorthair|Khao Manee")
DOG_BREEDS = _words(
    "Pomeranian|Shih Tzu|Golden Retriever|French Bulldog|Thai Bangkaew|Chihuahua|Corgi|Poodle"
)
MAIL_DOMAINS = _words("gmail.com|yahoo.com|hotmail.com|outlook.com|icloud.com")


@dataclass
class Person:
    """Everything generated for one customer before it is written."""

    n: int
    ext: str
    name: str
    slug: str
    gender: str
    locale: str
    persona: str
    profile: str
    card: tuple[str, str] | None = None
    last_days_ago: int | None = None
    first_days_ago: int | None = None
    attributes: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)


def logins() -> list[tuple[str, str, str]]:
    """The demo's sign-ins, one per role: (role, email, password)."""
    by_key = {row[0]: row for row in STAFF}
    return [(role, by_key[key][1], by_key[key][5]) for role, key in LOGIN_KEYS]


def load_demo(
    customers: int = 2000, *, now: datetime, echo: Callable[[str], None] = log.info
) -> list[tuple[str, str, str]]:
    """Build the demo business (refusing when it exists); returns one login per role."""
    if Store.select().where(Store.key.in_([SALON_KEY, CLINIC_KEY])).exists():
        echo("The demo stores already exist; nothing was added.")
        return logins()
    customers = max(int(customers), 20)
    rng = random.Random(SEED)
    salon_count = round(customers * 0.6)
    with db.atomic():
        echo("Creating stores and staff…")
        store_rows = {spec.short: _create_store(spec, now) for spec in (SALON, CLINIC)}
        staff = _create_staff(store_rows)
        for spec, count in ((SALON, salon_count), (CLINIC, customers - salon_count)):
            echo(f"{count:,} customers with a year of history for {spec.name}…")
            store = store_rows[spec.short]
            products = _create_products(store, spec, now)
            tags = _create_tags(store, spec, now)
            _build_store(spec, store, count, staff, products, tags, now, rng)
    echo("Running plans…")
    _start_plans(store_rows, staff, now, echo)
    for store in store_rows.values():  # the history's visits were inserted in bulk
        reports.attribute_returns(store)
    return logins()


# Each store's plans: (template, name, extra fields for POST /plans).
PLANS = {
    "kl": [
        ("member_day", "Hari Ahli 18hb — mata ganda dua / Member day on the 18th", {}),
        ("second_visit", "Pelanggan baru: jemput kembali / New client second visit", {}),
        (
            "post_service",
            "Lash refill reminder 14 days after lashes",
            {
                "params": {"days_after": 14, "products": ["LASH-EXT"]},
                "action": {"kind": "followup", "due_in_hours": 8},
            },
        ),
        ("post_service", "Thank-you message 3 days after a treatment", {"backfill": False}),
        ("card_expiry", "Card expires within 30 days", {"action": {"kind": "followup"}}),
        ("count_card_low", "Facial / lash card: 2 uses or fewer left", {}),
        ("balance_low", "Top-up card below RM 500", {}),
        ("birthday", "Birthday greeting / Ucapan hari jadi", {}),
        ("service_interval", "We miss you (173 days), then an offer (195 days)", {}),
        ("points_reminder", "Points balance every 28 days", {}),
    ],
    "bkk": [
        ("second_visit", "ลูกค้าใหม่: ชวนกลับมาอีกครั้ง (New client second visit)", {}),
        (
            "post_service",
            "ติดตามอาการหลังรักษา 3 วัน (Check-in 3 days after a visit)",
            {"backfill": False},
        ),
        (
            "card_use_reminder",
            "เตือนถ่ายพยาธิแมวทุกเดือน (Monthly deworming reminder)",
            {"params": {"every_days": 30}},
        ),
        ("card_expiry", "บัตรใกล้หมดอายุ (Card expires within 30 days)", {}),
        ("count_card_low", "บัตรอาบน้ำตัดขนเหลือน้อย (Grooming card running low)", {}),
        ("balance_low", "ยอดเงินในบัตรต่ำกว่า ฿500 (Wallet below ฿500)", {}),
        (
            "service_interval",
            "ถึงเวลาตรวจสุขภาพ (Check-up due after 120 days, offer after 150)",
            {"params": {"days_after_last_visit": 120, "promo_days_after_last_visit": 150}},
        ),
    ],
}
MANAGERS = {"kl": "mgr_kl", "bkk": "mgr_bkk"}
WARM_UP_DAYS = 3


def _start_plans(
    store_rows: dict[str, Store], staff: dict[str, Staff], now: datetime, echo
) -> None:
    """Switch the template plans on a few days ago; the engine catches up day by day while
    the staff work through most of each day's follow-ups."""
    from app.services import plans, scheduler

    started = now - timedelta(days=WARM_UP_DAYS)
    for short, rows in PLANS.items():
        store = store_rows[short]
        with db.atomic():
            for template, name, extra in rows:
                data = {"template": template, "name": name, "status": "active", **extra}
                plans.create_plan(store, data, now=started, created_by=staff[MANAGERS[short]].id)
    rng = random.Random(SEED + 1)
    instants = [started + timedelta(days=k) for k in range(1, WARM_UP_DAYS)] + [now]
    for instant, following in zip(instants, instants[1:] + [None], strict=True):
        summary = scheduler.tick(now=instant)
        echo(f"  {summary.line(instant)}")
        if following is not None:
            done = _work_followups(rng, staff, store_rows, instant, following)
            echo(f"  staff logged {done:,} follow-ups before {following:%Y-%m-%d %H:%M} UTC")


OUTCOME_WEIGHTS = (
    ("reached", 34),
    ("booked", 26),
    ("no_answer", 24),
    ("declined", 9),
    ("wrong_number", 3),
    ("opted_out", 4),
)
CHANNEL_BY_REGION = {"MY": ("whatsapp", "phone"), "TH": ("line", "phone")}


def _work_followups(
    rng: random.Random,
    staff: dict[str, Staff],
    store_rows: dict[str, Store],
    since: datetime,
    until: datetime,
) -> int:
    """Staff log an outcome on most follow-ups that fell due before `until`; the rest stay
    open and become overdue, as in a real week."""
    from app.models import FollowUp
    from app.services import followups

    regions = {s.id: s for s in store_rows.values()}
    managers = {store_rows[short].id: staff[key] for short, key in MANAGERS.items()}
    people = {s.id: s for s in staff.values()}
    due = (
        FollowUp.select()
        .where((FollowUp.status == "open") & (FollowUp.due_at < until))
        .order_by(FollowUp.due_at, FollowUp.id)
    )
    done = 0
    left_open: set = set()
    for followup in list(due):
        if rng.random() < 0.18 or followup.assignee_id not in left_open:
            left_open.add(followup.assignee_id)  # everyone keeps some overdue work to show
            continue
        store = regions[followup.store_id]
        who = people.get(followup.assignee_id) or managers[followup.store_id]
        earliest = max(followup.created_at, since) + timedelta(minutes=5)
        at = min(followup.due_at + timedelta(minutes=rng.randint(-300, 90)), until)
        at = max(at, earliest)
        if at >= until:
            continue
        outcome = rng.choices([o for o, _ in OUTCOME_WEIGHTS], [w for _, w in OUTCOME_WEIGHTS])[0]
        appointment = None
        if outcome == "booked":
            day = at.astimezone(ZoneInfo(store.timezone)).date() + timedelta(days=rng.randint(2, 9))
            appointment = datetime.combine(day, time(rng.randint(10, 17)), ZoneInfo(store.timezone))
        followups.log_outcome(
            followup,
            who,
            outcome,
            now=at,
            channel=rng.choice(CHANNEL_BY_REGION.get(store.region, ("phone",))),
            appointment_at=appointment,
        )
        done += 1
    return done


# The demo business has no WhatsApp, LINE or SMS provider account yet: its messages go to the
# log-only channel (switched on, last in the fallback order), which writes them to the server
# log. Setting up and switching on a real channel takes over from it.
CHANNEL_ORDER = {
    "MY": ["whatsapp", "sms", "email", "log_only", "followup"],
    "TH": ["line", "sms", "email", "log_only", "followup"],
}


def _create_store(spec: StoreSpec, now: datetime) -> Store:
    store = stores.create_store(
        spec.key, spec.name, spec.timezone, spec.region, spec.currency, spec.locale
    )
    store.member_day = spec.member_day
    store.settings = dict(store.settings, demo=True, channel_order=CHANNEL_ORDER[spec.region])
    store.save()
    messaging.configure_channel(
        store, "log_only", now, True, {}, {}, rate=(messaging.UNLIMITED, "second")
    )
    return store


def _create_staff(store_rows: dict[str, Store]) -> dict[str, Staff]:
    out = {}
    for key, email, name, role, keys, password in STAFF:
        member_of = [store_rows[k] for k in keys]
        out[key], _ = auth.create_staff(email, name, role, member_of, password=password)
    return out


def _create_products(store: Store, spec: StoreSpec, now: datetime) -> dict[str, int]:
    rows = [
        dict(
            store=store.id,
            sku=c.sku,
            name=c.name,
            kind=c.kind,
            price=Decimal(c.price),
            uses=c.uses,
            value=Decimal(c.value) if c.value else None,
            valid_days=c.valid_days,
            active=True,
            created_at=now - timedelta(days=400),
        )
        for c in spec.cards.values()
    ]
    CardProduct.insert_many(rows).execute()
    return {p.sku: p.id for p in CardProduct.select().where(CardProduct.store == store.id)}


def _create_tags(store: Store, spec: StoreSpec, now: datetime) -> dict[str, int]:
    rows = [
        dict(store=store.id, name=n, dimension=d, colour=c, created_at=now - timedelta(days=400))
        for n, d, c in spec.tags
    ]
    Tag.insert_many(rows).execute()
    return {t.name: t.id for t in Tag.select().where(Tag.store == store.id)}


# --- people -------------------------------------------------------------------------------------


def _salon_person(rng: random.Random) -> tuple[str, str, str, str]:
    """(name, e-mail slug, gender, locale) for a Kuala Lumpur client."""
    female = rng.random() < 0.86
    kind = rng.choices(["malay", "cn", "hans", "hant", "indian", "expat"], [40, 20, 12, 8, 16, 4])[
        0
    ]
    if kind == "malay":
        given = rng.choice(MALAY_F if female else MALAY_M)
        father = rng.choice(MALAY_FATHER)
        name = f"{given} {'binti' if female else 'bin'} {father}"
        return name, given.split()[-1].lower() + father.lower()[:4], _g(female), "ms"
    if kind == "cn":
        surname = rng.choice(CN_ROMAN_SURNAME)
        given = rng.choice(CN_ROMAN_F if female else CN_ROMAN_M)
        return (
            f"{surname} {given}",
            given.replace(" ", "").lower() + surname.lower(),
            _g(female),
            "en",
        )
    if kind == "hans":
        s, sr = rng.choice(HANS_SURNAME)
        g, gr = rng.choice(HANS_F if female else HANS_M)
        return s + g, sr + gr, _g(female), "zh_Hans"
    if kind == "hant":
        s, sr = rng.choice(HANT_SURNAME)
        g, gr = rng.choice(HANT_F if female else HANT_M)
        return s + g, gr + sr, _g(female), "zh_Hant"
    if kind == "indian":
        given = rng.choice(INDIAN_F if female else INDIAN_M)
        father = rng.choice(INDIAN_FATHER)
        return f"{given} {'a/p' if female else 'a/l'} {father}", given.lower(), _g(female), "en"
    name, slug = _expat_name(rng, female)
    return name, slug.replace(".", ""), _g(female), "en"


def _clinic_person(rng: random.Random) -> tuple[str, str, str, str]:
    """(name, e-mail slug, gender, locale) for a Bangkok pet owner."""
    female = rng.random() < 0.64
    kind = rng.choices(["thai", "hans", "hant", "expat"], [80, 5, 4, 11])[0]
    if kind == "thai":
        g, gr = rng.choice(THAI_F if female else THAI_M)
        s, sr = rng.choice(THAI_SURNAME)
        return f"{g} {s}", f"{gr}.{sr[:3]}", _g(female), "th"
    if kind == "hans":
        s, sr = rng.choice(HANS_SURNAME)
        g, gr = rng.choice(HANS_F if female else HANS_M)
        return s + g, sr + gr, _g(female), "zh_Hans"
    if kind == "hant":
        s, sr = rng.choice(HANT_SURNAME)
        g, gr = rng.choice(HANT_F if female else HANT_M)
        return s + g, gr + sr, _g(female), "zh_Hant"
    name, slug = _expat_name(rng, female)
    return name, slug, _g(female), "en"


def _expat_name(rng: random.Random, female: bool) -> tuple[str, str]:
    """(name, e-mail slug) of a European, American, Korean or Japanese client."""
    if rng.random() < 0.25:
        s, sr = rng.choice(JAPANESE_SURNAME)
        g, gr = rng.choice(JAPANESE_F if female else JAPANESE_M)
        return f"{s} {g}", f"{gr}.{sr}"
    g, gr = rng.choice(EXPAT_F if female else EXPAT_M)
    s, sr = rng.choice(EXPAT_SURNAME)
    return f"{g} {s}", f"{gr}.{sr}"


def _new_person(spec: "StoreSpec", rng: random.Random, seen: set[str]) -> tuple[str, str, str, str]:
    """A client whose full name is not yet in the store's book (namesakes are rare there)."""
    make = _salon_person if spec is SALON else _clinic_person
    for _ in range(20):
        person = make(rng)
        if person[0] not in seen:
            break
    seen.add(person[0])
    return person


def _g(female: bool) -> str:
    return "female" if female else "male"


def _phone(rng: random.Random, region: str, taken: set[str]) -> str:
    """A valid, unused E.164 mobile number in the region."""
    while True:
        if region == "MY":
            prefix = rng.choice(["12", "13", "14", "16", "17", "18", "19", "11"])
            digits = 8 if prefix == "11" else 7
            raw = f"+60{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}"
        else:
            raw = f"+66{rng.choice('689')}{rng.randrange(10**7, 10**8)}"
        if raw in taken:
            continue
        parsed = phonenumbers.parse(raw, region)
        if (
            phonenumbers.is_valid_number(parsed)
            and phonenumbers.region_code_for_number(parsed) == region
        ):
            taken.add(raw)
            return raw


# --- history ------------------------------------------------------------------------------------

PROFILES = (("regular", 34), ("lapsed", 22), ("occasional", 21), ("one_visit", 15), ("new", 8))
SALON_PERSONAS = {
    "lash": (("LASH-REFILL", 0.75), ("LASH-EXT", 0.25)),
    "facial": (("FACIAL", 0.85), ("BROW", 0.15)),
    "nails": (("MANICURE", 0.65), ("PEDICURE", 0.35)),
    "hair": (("HAIRCUT", 0.6), ("COLOUR", 0.25), ("BLOWDRY", 0.15)),
}
SALON_RETAIL = {"lash": "LASH-CLEANSER", "facial": "SERUM", "nails": "SERUM", "hair": "SHAMPOO"}
CLINIC_PERSONAS = {
    "cat": (("CHECKUP", 0.35), ("DEWORM", 0.35), ("VACCINE", 0.2), ("DENTAL", 0.1)),
    "dog": (("GROOM", 0.5), ("FLEA", 0.15), ("VACCINE", 0.15), ("CHECKUP", 0.12), ("DENTAL", 0.08)),
}
CLINIC_RETAIL = {"cat": "FOOD-CAT", "dog": "FOOD-DOG"}
PERSONA_INTERVAL = {"lash": 18, "facial": 32, "nails": 24, "hair": 45, "cat": 55, "dog": 33}
CARD_PERSONA = {
    "LASH6": "lash",
    "FACIAL10": "facial",
    "BLOWDRY3M": "hair",
    "DEWORM3": "cat",
    "GROOM12": "dog",
}


def _rhythm(rng: random.Random, profile: str, interval: int, today: date) -> list[date]:
    """The days a customer without a card came in, following their profile."""
    if profile == "new":
        first = today - timedelta(days=rng.randint(1, 14))
        days = [first]
        if rng.random() < 0.2 and first < today - timedelta(days=3):
            days.append(first + timedelta(days=rng.randint(1, (today - first).days - 1)))
        return days
    if profile == "one_visit":
        return [today - timedelta(days=rng.randint(20, 340))]
    if profile == "occasional":
        interval = rng.randint(60, 120)
    else:
        interval = max(7, round(interval * rng.uniform(0.8, 1.5)))
    start = today - timedelta(days=rng.randint(90, 360))
    if profile == "lapsed":
        end = today - timedelta(days=rng.randint(60, 200))
        start = min(start, end - timedelta(days=interval))
    else:
        end = today - timedelta(days=1)
    days, day = [], start
    while day <= end:
        days.append(day)
        day += timedelta(days=max(5, round(interval * rng.uniform(0.75, 1.3))))
    if profile == "regular" and days and (today - days[-1]).days > interval * 1.5:
        days.append(today - timedelta(days=rng.randint(1, interval)))
    return [d for d in days if today - timedelta(days=364) <= d < today] or [end]


@dataclass
class CardPlan:
    """A customer card's life: the days it was used and how it ended."""

    spec: CardSpec
    issue: date
    uses: list[date]
    top_up: date | None = None


def _card_life(rng: random.Random, spec: CardSpec, scenario: str, today: date) -> CardPlan:
    """The issue day and use days that put a card in the wanted state today."""

    def spaced(first: date, count: int, before: date, every: int = spec.interval) -> list[date]:
        out = []
        for k in range(count):
            day = first + timedelta(days=k * every + (rng.randint(-2, 2) if k else 0))
            if day >= before:
                break
            out.append(day)
        return out

    if scenario == "used_up":
        every = min(spec.interval, 290 // spec.uses)
        issue = today - timedelta(days=spec.uses * every + rng.randint(10, 50))
        return CardPlan(spec, issue, spaced(issue, spec.uses, today, every))
    if scenario == "low_uses":
        used = spec.uses - rng.choice((1, 2))
        every = min(spec.interval, 300 // used)
        issue = today - timedelta(days=(used - 1) * every + rng.randint(20, every + 10))
        return CardPlan(spec, issue, spaced(issue, used, today, every))
    if scenario == "expiring":
        issue = today + timedelta(days=rng.randint(3, 28)) - timedelta(days=spec.valid_days)
        used = rng.randint(2, max(2, min(spec.uses - 3, 8)))
        return CardPlan(spec, issue, spaced(issue, used, today))
    if scenario == "expired":
        expiry = today - timedelta(days=rng.randint(5, 90))
        issue = expiry - timedelta(days=spec.valid_days)
        used = rng.randint(1, spec.uses - 2)
        return CardPlan(spec, issue, spaced(issue, used, expiry))
    if scenario == "active":
        issue = today - timedelta(days=rng.randint(40, 150))
        used = min(rng.randint(2, spec.uses - 4), (today - issue).days // spec.interval + 1)
        return CardPlan(spec, issue, spaced(issue, used, today))
    if scenario == "period_active":
        issue = today - timedelta(days=rng.randint(10, 70))
        return CardPlan(spec, issue, spaced(issue, 14, today))
    if scenario == "period_expired":
        issue = today - timedelta(days=rng.randint(100, 270))
        return CardPlan(spec, issue, spaced(issue, 13, issue + timedelta(days=spec.valid_days)))
    if scenario == "sv_low":
        issue = today - timedelta(days=rng.randint(120, 250))
        return CardPlan(spec, issue, spaced(issue, 40, today))
    issue = today - timedelta(days=rng.randint(20, 150))
    # A high balance: a card that was topped up on its latest use.
    plan = CardPlan(spec, issue, spaced(issue, rng.randint(2, 4), today))
    plan.top_up = plan.uses[-1]
    return plan


RETAIL = {"SERUM", "LASH-CLEANSER", "SHAMPOO", "FOOD-CAT", "FOOD-DOG", "PET-SHAMPOO"}
LEVELS = {SALON_KEY: (Decimal(800), Decimal(2000)), CLINIC_KEY: (Decimal(6000), Decimal(15000))}
CENT = Decimal("0.01")


def _money(value) -> Decimal:
    return Decimal(value).quantize(CENT)


def _item(service: Service) -> dict:
    return {
        "sku": service.sku,
        "name": service.name,
        "quantity": 1,
        "price": str(_money(service.price)),
    }


def _card_item(card: CardSpec) -> dict:
    return {"sku": card.sku, "name": card.name, "quantity": 1, "price": str(_money(card.price))}


class History:
    """Writes one store's year: events, cards and card ledger rows, keyed by external ids."""

    def __init__(self, spec: StoreSpec, now: datetime, rng: random.Random):
        self.spec, self.now, self.rng = spec, now, rng
        self.tz = ZoneInfo(spec.timezone)
        self.today = now.astimezone(self.tz).date()
        self.events: list[dict] = []
        self.cards: list[dict] = []
        self.ledger: list[dict] = []
        self.seq = 0

    def at(self, day: date) -> datetime:
        """A plausible opening-hours instant on a local day, in UTC."""
        lo, hi = self.spec.hours
        clock_time = time(self.rng.randint(lo, hi - 1), self.rng.choice((0, 15, 30, 45)))
        return datetime.combine(day, clock_time, tzinfo=self.tz).astimezone(UTC)

    def event(self, person: Person, type_: str, at: datetime, **kw) -> dict:
        """Queue one event row (customer and card named by external id until written)."""
        self.seq += 1
        row = dict(
            customer=person.ext,
            external_id=f"demo-{self.spec.short}-{self.seq:07d}",
            type=type_,
            occurred_at=at,
            amount=kw.get("amount"),
            items=kw.get("items"),
            card=kw.get("card"),
            card_uses=kw.get("card_uses"),
            card_amount=kw.get("card_amount"),
            appointment_at=kw.get("appointment_at"),
            staff=kw.get("staff"),
        )
        self.events.append(row)
        person.events.append(row)
        return row

    def services_for(self, person: Person, first: bool) -> list[str]:
        """What a customer had done on one visit."""
        rng, salon = self.rng, self.spec is SALON
        menu = (SALON_PERSONAS if salon else CLINIC_PERSONAS)[person.persona]
        skus = [rng.choices([s for s, _ in menu], [w for _, w in menu])[0]]
        if first and person.persona == "lash":
            skus = ["LASH-EXT"]
        if first and person.persona == "cat":
            skus = ["CHECKUP"]
        if salon and rng.random() < 0.1 and "BROW" not in skus:
            skus.append("BROW")
        if rng.random() < 0.18:
            skus.append((SALON_RETAIL if salon else CLINIC_RETAIL)[person.persona])
        return skus

    def person_days(self, person: Person) -> list[date]:
        """The days a customer without a card came in."""
        interval = PERSONA_INTERVAL[person.persona]
        days = _rhythm(self.rng, person.profile, interval, self.today)
        if person.last_days_ago:
            last = self.today - timedelta(days=person.last_days_ago)
            days = [d for d in days if d < last - timedelta(days=14)] + [last]
        if person.first_days_ago:
            days = [self.today - timedelta(days=person.first_days_ago)]
        return sorted(set(days))

    def build(self, person: Person) -> None:
        """Generate a customer's visits, card life and bookings."""
        spec, rng, today = self.spec, self.rng, self.today
        life = None
        if person.card:
            sku, scenario = person.card
            life = _card_life(rng, spec.cards[sku], scenario, today)
            days = set(life.uses) | {life.issue}
            span = (today - life.issue).days
            for _ in range(rng.randint(0, 3)):
                day = life.issue + timedelta(days=rng.randint(-60, max(1, span - 1)))
                if today - timedelta(days=364) <= day < today:
                    days.add(day)
            days = sorted(days)
        else:
            days = self.person_days(person)
        card = None
        if life is not None:
            card = self.open_card(person, life)
        for i, day in enumerate(days):
            t = self.at(day)
            skus = self.services_for(person, first=i == 0)
            if card is not None and day == life.issue:
                self.sell_card(person, card, life, t)
                t += timedelta(minutes=3)
            used = (
                card is not None and day in life.uses and self.use_card(person, card, life, t, skus)
            )
            if not used:
                self.paid_visit(person, t, skus)
            if card is not None and life.top_up == day:
                self.top_up(person, card, t + timedelta(minutes=40))
            if i and rng.random() < 0.22:
                self.booking(person, t, days[i - 1])
        if card is not None:
            self.close_card(card, life)
        if person.profile == "regular" and days and rng.random() < 0.4:
            booked = self.at(today + timedelta(days=rng.randint(1, 21)))
            last = self.at(days[-1]) if days[-1] < today else self.now
            self.event(
                person,
                "appointment_booked",
                min(last, self.now - timedelta(minutes=5)),
                appointment_at=booked,
                items=[_item(self.spec.services[self.services_for(person, False)[0]])],
            )

    def open_card(self, person: Person, life: CardPlan) -> dict:
        """The customer card row, filled in as its life is played."""
        spec = life.spec
        row = dict(
            customer=person.ext,
            product=spec.sku,
            external_id=f"demo-card-{self.spec.short}-{person.n:05d}",
            balance=_money(spec.value) if spec.kind == "stored_value" else None,
            remaining_uses=spec.uses if spec.kind == "count" else None,
            expires_on=life.issue + timedelta(days=spec.valid_days) if spec.valid_days else None,
            status="active",
            issued_at=None,
            last_used_at=None,
        )
        self.cards.append(row)
        return row

    def ledger_row(self, card: dict, event: dict | None, kind: str, at: datetime, **delta) -> None:
        self.ledger.append(
            dict(
                card=card["external_id"],
                event=event["external_id"] if event else None,
                kind=kind,
                delta_balance=delta.get("balance", Decimal(0)),
                delta_uses=delta.get("uses", 0),
                balance_after=card["balance"],
                uses_after=card["remaining_uses"],
                staff=event["staff"] if event else None,
                note=delta.get("note", ""),
                at=at,
            )
        )

    def sell_card(self, person: Person, card: dict, life: CardPlan, t: datetime) -> None:
        """The purchase of the card, with its "issue" ledger row."""
        spec = life.spec
        staff = self.spec.buyer_staff or self.spec.services[spec.service or "FACIAL"].staff
        event = self.event(
            person, "purchase", t, amount=_money(spec.price), items=[_card_item(spec)], staff=staff
        )
        card["issued_at"] = t
        self.ledger_row(
            card,
            event,
            "issue",
            t,
            balance=card["balance"] or Decimal(0),
            uses=card["remaining_uses"] or 0,
        )

    def use_card(
        self, person: Person, card: dict, life: CardPlan, t: datetime, skus: list[str]
    ) -> bool:
        """Pay a visit with the card when it can; False when the card cannot cover it."""
        spec = life.spec
        if card["status"] != "active":
            return False
        if spec.kind in ("count", "period"):
            service = self.spec.services[spec.service]
            self.event(person, "service_completed", t, items=[_item(service)], staff=service.staff)
            uses = 1 if spec.kind == "count" else None
            event = self.event(
                person,
                "card_used",
                t + timedelta(minutes=2),
                items=[_item(service)],
                card=card["external_id"],
                card_uses=uses,
                staff=service.staff,
            )
            if spec.kind == "count":
                card["remaining_uses"] -= 1
                if card["remaining_uses"] == 0:
                    card["status"] = "used_up"
            card["last_used_at"] = event["occurred_at"]
            self.ledger_row(card, event, "use", event["occurred_at"], uses=-(uses or 0))
            extras = [s for s in skus[1:] if s in RETAIL]
            if extras:
                self.paid_visit(person, t + timedelta(minutes=5), extras)
            return True
        services = [self.spec.services[s] for s in skus]
        cost = sum((_money(s.price) for s in services), Decimal(0))
        if card["balance"] - cost <= 0:
            return False
        main = services[0]
        done = [_item(s) for s in services if s.sku not in RETAIL]
        if done:
            self.event(person, "service_completed", t, items=done, staff=main.staff)
        event = self.event(
            person,
            "card_used",
            t + timedelta(minutes=2),
            items=[_item(s) for s in services],
            card=card["external_id"],
            card_amount=cost,
            staff=main.staff,
        )
        card["balance"] -= cost
        card["last_used_at"] = event["occurred_at"]
        self.ledger_row(card, event, "use", event["occurred_at"], balance=-cost)
        return True

    def paid_visit(self, person: Person, t: datetime, skus: list[str]) -> None:
        """A visit paid at the counter: the services done and the purchase."""
        services = [self.spec.services[s] for s in skus]
        done = [_item(s) for s in services if s.sku not in RETAIL]
        main = services[0]
        if done:
            self.event(person, "service_completed", t, items=done, staff=main.staff)
        total = sum((_money(s.price) for s in services), Decimal(0))
        self.event(
            person,
            "purchase",
            t + timedelta(minutes=4),
            amount=total,
            items=[_item(s) for s in services],
            staff=self.spec.buyer_staff or main.staff,
        )

    def top_up(self, person: Person, card: dict, t: datetime) -> None:
        """A top-up of a stored-value card at the counter."""
        amount = _money(1000 if self.spec is SALON else 3000)
        staff = self.spec.buyer_staff or "beautician"
        event = self.event(
            person,
            "top_up",
            t,
            amount=amount,
            card=card["external_id"],
            card_amount=amount,
            staff=staff,
        )
        card["balance"] += amount
        self.ledger_row(card, event, "top_up", t, balance=amount)

    def close_card(self, card: dict, life: CardPlan) -> None:
        """Expire a card whose validity ended before today."""
        if card["status"] == "active" and card["expires_on"] and card["expires_on"] < self.today:
            card["status"] = "expired"
            expired_at = datetime.combine(
                card["expires_on"] + timedelta(days=1), time(0, 5), tzinfo=self.tz
            ).astimezone(UTC)
            self.ledger_row(card, None, "expire", expired_at, note="Validity ended")

    def booking(self, person: Person, visit_at: datetime, previous: date) -> None:
        """An appointment booked a few days before a visit; now and then one cancelled."""
        gap = (visit_at.astimezone(self.tz).date() - previous).days
        booked_at = visit_at - timedelta(days=self.rng.randint(1, max(1, min(7, gap - 1))), hours=3)
        self.event(person, "appointment_booked", booked_at, appointment_at=visit_at)
        if self.rng.random() < 0.12:
            moved = visit_at - timedelta(days=self.rng.randint(1, 3))
            self.event(
                person,
                "appointment_booked",
                booked_at - timedelta(minutes=30),
                appointment_at=moved,
            )
            cancel_at = min(moved - timedelta(hours=5), visit_at - timedelta(hours=6))
            self.event(
                person, "appointment_cancelled", max(cancel_at, booked_at), appointment_at=moved
            )


def _birthday(rng: random.Random, today: date, index: int) -> date | None:
    """Birthdays with a few this week, more this month, one on 29 February."""
    year = today.year - rng.randint(18, 62)
    if index == 0:
        return date(1996, 2, 29)
    if index <= 6:
        day = today + timedelta(days=index - 1)
    elif rng.random() < 0.07:
        day = today.replace(day=rng.randint(1, 28))
    elif rng.random() < 0.08:
        return None
    else:
        day = date(2001, 1, 1) + timedelta(days=rng.randint(0, 364))
    try:
        return date(year, day.month, day.day)
    except ValueError:
        return date(year - year % 4, day.month, day.day)


def _consents(rng: random.Random, spec: StoreSpec, has_email: bool) -> dict[str, tuple[bool, bool]]:
    """channel → (granted at sign-up, opted out since)."""
    if spec.region == "MY":
        chances = {"whatsapp": 0.86, "sms": 0.55}
    else:
        chances = {"line": 0.82, "sms": 0.45}
    if has_email:
        chances["email"] = 0.7
    out = {}
    for channel, chance in chances.items():
        granted = rng.random() < chance
        out[channel] = (granted, granted and rng.random() < 0.05)
    return out


def _attributes(rng: random.Random, spec: StoreSpec, person: Person) -> dict[str, str]:
    """Custom attributes: the pet in the clinic, skin and lash style in the salon."""
    if spec is CLINIC:
        species = person.persona
        return {
            "pet_name": rng.choice(PET_NAMES),
            "species": species,
            "breed": rng.choice(CAT_BREEDS if species == "cat" else DOG_BREEDS),
            "pet_age": str(
                rng.choices(range(1, 17), [9, 10, 10, 9, 8, 8, 7, 7, 6, 5, 5, 4, 4, 3, 3, 2])[0]
            ),
        }
    out = {}
    if person.persona == "facial" or rng.random() < 0.2:
        out["skin_type"] = rng.choices(
            ["normal", "oily", "dry", "combination", "sensitive"], [3, 2, 2, 3, 2]
        )[0]
    if person.persona == "lash":
        out["lash_style"] = rng.choice(["Classic", "Hybrid", "Volume", "Wispy"])
    return out


def _tags_for(
    rng: random.Random, spec: StoreSpec, person: Person, c: dict, today: date, tz
) -> list[str]:
    """Tags that agree with the customer's data."""
    tags = []
    if c["level"] == "Gold":
        tags.append("VIP")
    purchases = sum(1 for e in person.events if e["type"] == "purchase")
    if spec is SALON and purchases > 3 and c["total_spend"] >= LEVELS[spec.key][0]:
        tags.append("High value")
    if (today - c["joined_at"].astimezone(tz).date()).days <= 60:
        tags.append("New")
    if 60 <= (today - c["last_visit_at"].astimezone(tz).date()).days <= 200:
        tags.append("At risk")
    attrs = person.attributes
    if spec is SALON:
        if person.persona == "lash" and c["visit_count"] >= 3:
            tags.append("Lash lover")
        if any(it["sku"] == "COLOUR" for e in person.events for it in (e["items"] or [])):
            tags.append("Hair colour")
        if attrs.get("skin_type") == "sensitive":
            tags.append("Sensitive skin")
        if rng.random() < 0.02:
            tags.append("Bride-to-be")
    else:
        tags.append("Cat" if attrs["species"] == "cat" else "Dog")
        if int(attrs["pet_age"]) >= 8:
            tags.append("Senior pet")
        if rng.random() < 0.06:
            tags.append("Allergy")
    return tags


def _insert(model, rows: list[dict]) -> None:
    """Bulk insert with executemany: the same column conversions as peewee, without building
    SQL text for every value (that, not the database, dominated the demo's run time)."""
    if not rows:
        return
    names = list(rows[0])
    fields = [model._meta.fields[name] for name in names]
    database = db.obj
    left, right = database.quote

    def quote(name: str) -> str:
        return f"{left}{name}{right}"

    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(model._meta.table_name),
        ", ".join(quote(f.column_name) for f in fields),
        ", ".join([database.param] * len(fields)),
    )
    cursor = database.cursor()
    for batch in chunked(rows, BATCH):
        cursor.executemany(
            sql,
            [
                tuple(f.db_value(row[n]) for f, n in zip(fields, names, strict=True))
                for row in batch
            ],
        )


def _insert_and_map(model, rows: list[dict], store: Store) -> dict[str, int]:
    """Bulk insert rows with external ids and return external id → id for the store."""
    _insert(model, rows)
    query = model.select(model.id, model.external_id).where(model.store == store.id).tuples()
    return {ext: pk for pk, ext in query}


def _build_store(
    spec: StoreSpec,
    store: Store,
    count: int,
    staff: dict[str, Staff],
    products: dict[str, int],
    tags: dict[str, int],
    now: datetime,
    rng: random.Random,
) -> None:
    """Generate and bulk-insert one store's customers, cards, events and aggregates."""
    h = History(spec, now, rng)
    today, tz = h.today, h.tz
    personas = list(SALON_PERSONAS if spec is SALON else CLINIC_PERSONAS)
    people: list[Person] = []
    rotation = 0
    names: set[str] = set()
    for n in range(1, count + 1):
        name, slug, gender, locale = _new_person(spec, rng, names)
        profile = rng.choices([p for p, _ in PROFILES], [w for _, w in PROFILES])[0]
        person = Person(
            n,
            f"{spec.short.upper()}-{n:05d}",
            name,
            slug,
            gender,
            locale,
            rng.choice(personas),
            profile,
        )
        if profile in ("regular", "lapsed", "occasional") and rng.random() < 0.42:
            person.card = spec.card_rotation[rotation % len(spec.card_rotation)]
            rotation += 1
            person.persona = CARD_PERSONA.get(person.card[0], person.persona)
        people.append(person)
    # People the plans should find today: 173 and 195 days since the last visit, a new client.
    for person, days in zip(
        [p for p in people if p.profile == "lapsed" and not p.card], (173, 195, 173), strict=False
    ):
        person.last_days_ago = days
    for person in [p for p in people if p.profile == "new"][:2]:
        person.first_days_ago = 7
    for person in people:
        person.attributes = _attributes(rng, spec, person)
        h.build(person)

    months = int(loyalty.setting(store, "loyalty.expiry_months") or 0)

    def earn(event: dict) -> tuple[int, str]:
        return loyalty.points_for_amount(store, event["amount"], event["occurred_at"])

    def expiry(at: datetime) -> datetime | None:
        return at + relativedelta(months=months) if months else None

    taken: set[str] = set()
    employees = {s.staff for s in spec.services.values()}
    low, high = LEVELS[spec.key]
    customers: list[dict] = []
    extras: dict[str, dict] = {}
    for index, person in enumerate(people):
        visits = [e for e in person.events if e["type"] in VISIT_TYPES]
        first_at = min(e["occurred_at"] for e in visits)
        last_at = max(e["occurred_at"] for e in visits)
        spend = sum((e["amount"] for e in person.events if e["amount"] is not None), Decimal(0))
        days = {e["occurred_at"].astimezone(tz).date() for e in visits}
        joined = first_at
        if (first_at.astimezone(tz).date() - today).days < -300 and rng.random() < 0.6:
            joined = first_at - timedelta(days=rng.randint(30, 900))
        birthday = _birthday(rng, today, index)
        served = [e["staff"] for e in visits if e["staff"] in employees]
        assigned = None
        if served and rng.random() < 0.5:
            assigned = max(sorted(set(served)), key=served.count)
        elif spec is SALON and person.persona in ("facial", "nails") and rng.random() < 0.5:
            assigned = "beautician"
        email = None
        if rng.random() < (0.4 if spec is SALON else 0.3):
            email = f"{person.slug}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}"
        consents = _consents(rng, spec, email is not None)
        line_id = f"U{rng.getrandbits(128):032x}" if consents.get("line", (False,))[0] else None
        earned = sum(earn(e)[0] for e in person.events if e["type"] == "purchase")
        points = SIGNUP_POINTS + earned
        row = dict(
            store=store.id,
            external_id=person.ext,
            name=person.name,
            phone=_phone(rng, spec.region, taken),
            email=email,
            line_id=line_id,
            gender=person.gender,
            birthday=birthday,
            birthday_md=birthday.month * 100 + birthday.day if birthday else None,
            source=rng.choices([s for s, _ in spec.sources], [x for _, x in spec.sources])[0],
            level="Gold" if spend >= high else "Silver" if spend >= low else "Member",
            locale=person.locale,
            assigned_staff=staff[assigned].id if assigned else None,
            notes="",
            joined_at=joined,
            first_visit_at=first_at,
            last_visit_at=last_at,
            visit_count=len(days),
            total_spend=spend,
            points=points,
            created_at=joined,
            updated_at=now,
        )
        customers.append(row)
        extras[person.ext] = dict(consents=consents, last_at=last_at)
    customer_ids = _insert_and_map(Customer, customers, store)

    for card in h.cards:
        card.update(
            store=store.id,
            customer=customer_ids[card["customer"]],
            product=products[card["product"]],
        )
    card_ids = _insert_and_map(CustomerCard, h.cards, store)

    for row in h.events:
        row.update(
            store=store.id,
            customer=customer_ids[row["customer"]],
            card=card_ids[row["card"]] if row["card"] else None,
            staff=staff[row["staff"]].id if row["staff"] else None,
            source="demo",
            triggers_plans=True,
            created_at=row["occurred_at"],
        )
    event_ids = _insert_and_map(Event, h.events, store)

    items, visits, points = [], {}, []
    for row in h.events:
        eid = event_ids[row["external_id"]]
        for it in row["items"] or []:
            items.append(
                dict(
                    event=eid,
                    customer=row["customer"],
                    sku=it["sku"],
                    name=it["name"],
                    quantity=it["quantity"],
                    price=Decimal(it["price"]),
                )
            )
        if row["type"] in VISIT_TYPES:
            key = (row["customer"], row["occurred_at"].astimezone(tz).date())
            visit = visits.get(key)
            if visit is None:
                visit = visits[key] = dict(
                    customer=row["customer"],
                    store=store.id,
                    day=key[1],
                    first_at=row["occurred_at"],
                    amount=Decimal(0),
                    staff=row["staff"],
                )
            elif row["occurred_at"] < visit["first_at"]:
                visit.update(first_at=row["occurred_at"], staff=row["staff"])
            visit["amount"] += row["amount"] or Decimal(0)
        if row["type"] == "purchase":
            points.append(
                dict(
                    store=store.id,
                    customer=row["customer"],
                    delta=earn(row)[0],
                    kind="earn",
                    event=eid,
                    dedupe_key=f"earn:{eid}",
                    reason=f"Order {row['external_id']}"
                    + (f" ({earn(row)[1]})" if earn(row)[1] else ""),
                    staff=row["staff"],
                    expires_at=expiry(row["occurred_at"]),
                    at=row["occurred_at"],
                )
            )
    for led in h.ledger:
        led.update(
            card=card_ids[led["card"]],
            event=event_ids[led["event"]] if led["event"] else None,
            staff=staff[led["staff"]].id if led["staff"] else None,
        )

    consents, changes, attributes, customer_tags = [], [], [], []
    for person, row in zip(people, customers, strict=True):
        cid = customer_ids[person.ext]
        extra = extras[person.ext]
        joined = row["joined_at"]
        points.append(
            dict(
                store=store.id,
                customer=cid,
                delta=SIGNUP_POINTS,
                kind="signup",
                event=None,
                dedupe_key="signup",
                reason="Sign-up bonus",
                staff=None,
                expires_at=expiry(joined),
                at=joined,
            )
        )
        for channel, (granted, opted_out) in extra["consents"].items():
            out_at = joined + (now - joined) * rng.uniform(0.2, 0.9) if opted_out else None
            consents.append(
                dict(
                    customer=cid,
                    channel=channel,
                    granted=granted and not opted_out,
                    source="reply STOP" if opted_out else "signup",
                    at=out_at or joined,
                )
            )
            changes.append(
                dict(
                    customer=cid,
                    channel=channel,
                    granted=granted,
                    source="signup",
                    staff=None,
                    at=joined,
                )
            )
            if opted_out:
                changes.append(
                    dict(
                        customer=cid,
                        channel=channel,
                        granted=False,
                        source="reply STOP",
                        staff=None,
                        at=out_at,
                    )
                )
        for key, value in person.attributes.items():
            attributes.append(dict(customer=cid, key=key, value=value))
        for tag in _tags_for(rng, spec, person, row, today, tz):
            customer_tags.append(dict(customer=cid, tag=tags[tag], source="demo", added_at=now))
    _insert(EventItem, items)
    _insert(Visit, list(visits.values()))
    _insert(CardLedger, h.ledger)
    _insert(PointsEntry, points)
    _insert(Consent, consents)
    _insert(ConsentChange, changes)
    _insert(CustomerAttribute, attributes)
    _insert(CustomerTag, customer_tags)
    _redeem_rewards(spec, store, staff, customer_ids, extras, rng)


REWARDS = {
    "kl": [
        ("RM 10 voucher", 1000, "Off any treatment."),
        ("Free brow threading", 600, ""),
        ("Lash cleanser foam", 800, "Take-home lash care."),
    ],
    "bkk": [
        ("฿100 voucher", 5000, "ส่วนลด ฿100 ทุกบริการ (฿100 off any service)."),
        ("Free deworming", 3000, "ถ่ายพยาธิฟรี 1 ครั้ง (one free deworming)."),
        ("Medicated pet shampoo", 4000, ""),
    ],
}


def _redeem_rewards(
    spec: StoreSpec,
    store: Store,
    staff: dict[str, Staff],
    customer_ids: dict[str, int],
    extras: dict[str, dict],
    rng: random.Random,
) -> None:
    """The store's rewards, and some regulars who swapped points for a coupon at the counter."""
    rewards = [
        loyalty.save_reward(store, {"name": n, "points_price": p, "description": d})
        for n, p, d in REWARDS[spec.short]
    ]
    cheapest = min(r.points_price for r in rewards)
    counter = staff[spec.buyer_staff or "beautician"]
    rich = (
        Customer.select()
        .where((Customer.store == store.id) & (Customer.points >= cheapest * 2))
        .order_by(Customer.id)
    )
    for customer in list(rich):
        if rng.random() >= 0.3:
            continue
        ext = customer.external_id
        reward = rng.choice([r for r in rewards if r.points_price <= customer.points])
        at = extras[ext]["last_at"] + timedelta(minutes=10)
        coupon = loyalty.redeem(customer, reward, now=at, staff=counter, request_key=f"demo-{ext}")
        if rng.random() < 0.6:
            loyalty.use_coupon(coupon, counter, at + timedelta(minutes=5))
