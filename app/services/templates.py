"""The plan templates as data: parameters, defaults, default action, audience and scripts."""

from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from app.services import schedule

VISIT_EVENTS = ("visit", "service_completed", "purchase", "card_used")
RETURN_EVENTS = (*VISIT_EVENTS, "appointment_booked")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # int | time | decimal | skus
    default: object
    minimum: int | None = None


@dataclass(frozen=True)
class Template:
    key: str
    name: object
    description: object
    type: str  # one_off | behaviour | recurring
    params: tuple
    action: dict
    scripts: dict
    priority: int
    withdraw_on: tuple = RETURN_EVENTS
    audience: dict | None = None
    step_scripts: tuple = field(default_factory=tuple)


MEMBER_DAY = {
    "en": "Hi {first_name}, member day at {store_name} is on {member_day}: every purchase "
    "earns double points. We look forward to seeing you!",
    "zh_Hans": "{first_name}您好,{member_day}是{store_name}的会员日,当天消费可享双倍积分,期待您的光临!",
    "zh_Hant": "{first_name}您好,{member_day}是{store_name}的會員日,當天消費可享雙倍積分,期待您的光臨!",
    "th": "สวัสดีค่ะคุณ{first_name} วันที่ {member_day} เป็นวันสมาชิกของ {store_name} "
    "ใช้บริการหรือซื้อสินค้าวันนั้นรับคะแนนสะสมสองเท่า แล้วพบกันนะคะ",
    "ms": "Hai {first_name}, Hari Ahli di {store_name} jatuh pada {member_day}: setiap pembelian "
    "mendapat mata ganda dua. Kami menantikan kedatangan anda!",
}
SECOND_VISIT = {
    "en": "Hi {first_name}, this is {staff_name} from {store_name}. Thank you for visiting us "
    "recently! How are you finding the results? We'd love to see you again — shall I book your "
    "next appointment?",
    "zh_Hans": "{first_name}您好,我是{store_name}的{staff_name}。感谢您前几天到店体验!效果还满意吗?"
    "欢迎您再次光临,需要我帮您预约下次的时间吗?",
    "zh_Hant": "{first_name}您好,我是{store_name}的{staff_name}。感謝您前幾天到店體驗!效果還滿意嗎?"
    "歡迎您再次光臨,需要我幫您預約下次的時間嗎?",
    "th": "สวัสดีค่ะคุณ{first_name} ดิฉัน{staff_name}จาก {store_name} นะคะ "
    "ขอบคุณที่มาใช้บริการเมื่อไม่นานมานี้ค่ะ พอใจกับผลลัพธ์ไหมคะ "
    "ให้ดิฉันจองคิวครั้งถัดไปให้เลยไหมคะ",
    "ms": "Hai {first_name}, saya {staff_name} dari {store_name}. Terima kasih kerana berkunjung "
    "baru-baru ini! Bagaimana dengan hasilnya? Kami ingin berjumpa anda lagi — boleh saya "
    "tempahkan temu janji seterusnya?",
}
POST_SERVICE = {
    "en": "Hi {first_name}, thank you for visiting {store_name}. How are you finding your "
    "treatment? If you need a touch-up or have any questions, just reply to book.",
    "zh_Hans": "{first_name}您好,感谢您光临{store_name}!这次的服务效果还满意吗?如需补做或有任何问题,回复即可帮您预约。",
    "zh_Hant": "{first_name}您好,感謝您光臨{store_name}!這次的服務效果還滿意嗎?如需補做或有任何問題,回覆即可幫您預約。",
    "th": "สวัสดีค่ะคุณ{first_name} ขอบคุณที่มาใช้บริการที่ {store_name} ค่ะ "
    "พอใจกับบริการครั้งนี้ไหมคะ หากต้องการเติมหรือมีคำถาม ตอบกลับข้อความนี้เพื่อจองคิวได้เลยค่ะ",
    "ms": "Hai {first_name}, terima kasih kerana mengunjungi {store_name}. Bagaimana dengan "
    "rawatan anda? Jika perlukan sentuhan semula atau ada sebarang soalan, balas mesej ini "
    "untuk membuat tempahan.",
}
CARD_USE_REMINDER = {
    "en": "Hi {first_name}, a friendly reminder from {store_name}: it's time for your next "
    "visit. Your {card_name} still has {remaining_uses} uses left. Reply to book a time.",
    "zh_Hans": "{first_name}您好,{store_name}温馨提醒:又到了该到店的时间啦。您的{card_name}还剩{remaining_uses}次,回复即可预约。",
    "zh_Hant": "{first_name}您好,{store_name}溫馨提醒:又到了該到店的時間囉。您的{card_name}還剩{remaining_uses}次,回覆即可預約。",
    "th": "สวัสดีค่ะคุณ{first_name} {store_name} ขอแจ้งเตือนว่าถึงเวลานัดครั้งถัดไปแล้วค่ะ "
    "{card_name} ของคุณยังเหลืออีก {remaining_uses} ครั้ง ตอบกลับเพื่อจองคิวได้เลยค่ะ",
    "ms": "Hai {first_name}, peringatan mesra daripada {store_name}: sudah tiba masa untuk "
    "lawatan seterusnya. {card_name} anda masih berbaki {remaining_uses} kali penggunaan. "
    "Balas untuk membuat tempahan.",
}
CARD_EXPIRY = {
    "en": "Hi {first_name}, your {card_name} at {store_name} expires on {expiry_date}. Please "
    "come in and use it before then — reply to book a time.",
    "zh_Hans": "{first_name}您好,您在{store_name}的{card_name}将于{expiry_date}到期,请在到期前尽快到店使用,回复即可预约。",
    "zh_Hant": "{first_name}您好,您在{store_name}的{card_name}將於{expiry_date}到期,請在到期前盡快到店使用,回覆即可預約。",
    "th": "สวัสดีค่ะคุณ{first_name} {card_name} ของคุณที่ {store_name} จะหมดอายุในวันที่ "
    "{expiry_date} อย่าลืมมาใช้ก่อนหมดอายุนะคะ ตอบกลับเพื่อจองคิวได้เลยค่ะ",
    "ms": "Hai {first_name}, {card_name} anda di {store_name} akan tamat tempoh pada "
    "{expiry_date}. Sila datang dan gunakannya sebelum itu — balas untuk membuat tempahan.",
}
COUNT_CARD_LOW = {
    "en": "Hi {first_name}, this is {staff_name} from {store_name}. Your {card_name} has "
    "{remaining_uses} uses left. Would you like me to book your next visit, or tell you about "
    "renewing the card?",
    "zh_Hans": "{first_name}您好,我是{store_name}的{staff_name}。您的{card_name}还剩{remaining_uses}次,"
    "需要帮您预约下次到店吗?也可以为您介绍续卡优惠。",
    "zh_Hant": "{first_name}您好,我是{store_name}的{staff_name}。您的{card_name}還剩{remaining_uses}次,"
    "需要幫您預約下次到店嗎?也可以為您介紹續卡優惠。",
    "th": "สวัสดีค่ะคุณ{first_name} ดิฉัน{staff_name}จาก {store_name} นะคะ {card_name} "
    "ของคุณเหลืออีก {remaining_uses} ครั้ง ให้ดิฉันจองคิวครั้งถัดไปให้ไหมคะ "
    "หรือสนใจฟังโปรโมชันต่ออายุบัตรก็ได้ค่ะ",
    "ms": "Hai {first_name}, saya {staff_name} dari {store_name}. {card_name} anda tinggal "
    "{remaining_uses} kali penggunaan. Mahu saya tempahkan lawatan seterusnya, atau terangkan "
    "tawaran pembaharuan kad?",
}
BALANCE_LOW = {
    "en": "Hi {first_name}, this is {staff_name} from {store_name}. Your {card_name} has "
    "{balance} left. Would you like to top up before your next visit? I can also book a time "
    "for you.",
    "zh_Hans": "{first_name}您好,我是{store_name}的{staff_name}。您的{card_name}余额还剩{balance},"
    "下次到店前需要为您充值吗?也可以帮您预约时间。",
    "zh_Hant": "{first_name}您好,我是{store_name}的{staff_name}。您的{card_name}餘額還剩{balance},"
    "下次到店前需要為您儲值嗎?也可以幫您預約時間。",
    "th": "สวัสดีค่ะคุณ{first_name} ดิฉัน{staff_name}จาก {store_name} นะคะ {card_name} "
    "ของคุณมียอดคงเหลือ {balance} ต้องการเติมเงินก่อนมาครั้งหน้าไหมคะ ดิฉันจองคิวให้ได้เลยค่ะ",
    "ms": "Hai {first_name}, saya {staff_name} dari {store_name}. Baki {card_name} anda ialah "
    "{balance}. Mahu tambah nilai sebelum lawatan seterusnya? Saya juga boleh tempahkan masa "
    "untuk anda.",
}
BIRTHDAY = {
    "en": "Happy birthday, {first_name}! Everyone at {store_name} wishes you a wonderful year. "
    "A birthday treat is waiting for you on your next visit.",
    "zh_Hans": "{first_name},生日快乐!{store_name}全体同事祝您新的一岁美丽健康,下次到店还有一份生日礼遇等着您。",
    "zh_Hant": "{first_name},生日快樂!{store_name}全體同仁祝您新的一歲美麗健康,下次到店還有一份生日禮遇等著您。",
    "th": "สุขสันต์วันเกิดค่ะคุณ{first_name} ทีมงาน {store_name} ขออวยพรให้มีความสุขตลอดปี "
    "ครั้งหน้าที่มาใช้บริการ มีของขวัญวันเกิดรอคุณอยู่นะคะ",
    "ms": "Selamat hari jadi, {first_name}! Semua di {store_name} mendoakan tahun yang indah "
    "untuk anda. Hadiah hari jadi menanti anda pada lawatan seterusnya.",
}
SERVICE_REMINDER = {
    "en": "Hi {first_name}, your last visit to {store_name} was on {last_visit_date}, so your "
    "next service is nearly due. Our schedule fills up quickly — book early and we'll make sure "
    "you're well looked after. Reply to book.",
    "zh_Hans": "{first_name}您好,您上次到{store_name}是{last_visit_date},又到了该做下一次保养的时候啦。"
    "近期预约较满,建议您提前预约,我们会用心为您服务。回复即可预约。",
    "zh_Hant": "{first_name}您好,您上次到{store_name}是{last_visit_date},又到了該做下一次保養的時候囉。"
    "近期預約較滿,建議您提前預約,我們會用心為您服務。回覆即可預約。",
    "th": "สวัสดีค่ะคุณ{first_name} คุณมาใช้บริการที่ {store_name} ครั้งล่าสุดเมื่อ "
    "{last_visit_date} ใกล้ถึงเวลารับบริการครั้งถัดไปแล้วค่ะ ช่วงนี้คิวค่อนข้างแน่น "
    "แนะนำให้จองล่วงหน้า ตอบกลับเพื่อจองคิวได้เลยค่ะ",
    "ms": "Hai {first_name}, lawatan terakhir anda ke {store_name} ialah pada {last_visit_date}, "
    "jadi servis seterusnya hampir tiba. Jadual kami cepat penuh — tempah awal dan kami akan "
    "pastikan anda dilayan dengan baik. Balas untuk menempah.",
}
SERVICE_PROMO = {
    "en": "Hi {first_name}, we haven't seen you at {store_name} since {last_visit_date} and we "
    "miss you! Book your next service this month and enjoy a special returning-customer offer. "
    "Reply to book.",
    "zh_Hans": "{first_name}您好,自{last_visit_date}以来一直没见到您,{store_name}很想念您!"
    "本月预约下一次服务,即可享受老客户专属优惠。回复即可预约。",
    "zh_Hant": "{first_name}您好,自{last_visit_date}以來一直沒見到您,{store_name}很想念您!"
    "本月預約下一次服務,即可享受老客戶專屬優惠。回覆即可預約。",
    "th": "สวัสดีค่ะคุณ{first_name} {store_name} คิดถึงคุณนะคะ ไม่ได้เจอกันเลยตั้งแต่ "
    "{last_visit_date} จองบริการครั้งถัดไปภายในเดือนนี้ รับสิทธิพิเศษสำหรับลูกค้าเก่า "
    "ตอบกลับเพื่อจองคิวได้เลยค่ะ",
    "ms": "Hai {first_name}, kami tidak berjumpa anda di {store_name} sejak {last_visit_date} "
    "dan kami rindukan anda! Tempah servis seterusnya bulan ini dan nikmati tawaran istimewa "
    "pelanggan setia. Balas untuk menempah.",
}
POINTS_REMINDER = {
    # Seed 001's four items: the balance, rewards within reach, points to the next reward and
    # what was taken so far; then the link to the client's own page.
    "en": "Hi {first_name}, you have {points} points at {store_name}. Rewards you can take now: "
    "{rewards_within_reach}. Next reward: {next_reward}. Taken so far: {redeemed_so_far}. "
    "See your points and take a reward: {points_link}",
    "zh_Hans": "{first_name}您好,您在{store_name}的积分余额为{points}分。现在可兑换:"
    "{rewards_within_reach}。下一个奖励:{next_reward}。已兑换:{redeemed_so_far}。"
    "查看积分并兑换奖励:{points_link}",
    "zh_Hant": "{first_name}您好,您在{store_name}的積分餘額為{points}點。現在可兌換:"
    "{rewards_within_reach}。下一個獎勵:{next_reward}。已兌換:{redeemed_so_far}。"
    "查看積分並兌換獎勵:{points_link}",
    "th": "สวัสดีค่ะคุณ{first_name} คุณมีคะแนนสะสม {points} คะแนนที่ {store_name} "
    "ของรางวัลที่แลกได้ตอนนี้: {rewards_within_reach} รางวัลถัดไป: {next_reward} "
    "ที่แลกไปแล้ว: {redeemed_so_far} ดูคะแนนและแลกของรางวัลได้ที่ {points_link}",
    "ms": "Hai {first_name}, anda mempunyai {points} mata di {store_name}. Ganjaran yang boleh "
    "ditebus sekarang: {rewards_within_reach}. Ganjaran seterusnya: {next_reward}. Telah "
    "ditebus setakat ini: {redeemed_so_far}. Lihat mata anda dan tebus ganjaran: {points_link}",
}


def _message() -> dict:
    return {"kind": "message"}


def _followup(hours: int = 8) -> dict:
    return {"kind": "followup", "due_in_hours": hours, "assignee_rule": "default"}


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in (
        Template(
            "member_day",
            _l("Member day"),
            _l("Remind members before the monthly member day."),
            "recurring",
            (
                Param("day_of_month", "int", 18, 1),
                Param("remind_days_before", "int", 1, 0),
                Param("at", "time", "10:00"),
            ),
            _message(),
            MEMBER_DAY,
            priority=70,
            withdraw_on=(),
        ),
        Template(
            "second_visit",
            _l("New customer second visit"),
            _l("Invite a new customer back some days after the first visit."),
            "behaviour",
            (Param("days_after", "int", 7, 1), Param("at", "time", "09:00")),
            _followup(),
            SECOND_VISIT,
            priority=30,
        ),
        Template(
            "post_service",
            _l("Post-service follow-up"),
            _l("Check in some days after a service was completed."),
            "behaviour",
            (
                Param("days_after", "int", 3, 0),
                Param("products", "skus", []),
                Param("at", "time", "10:00"),
            ),
            _message(),
            POST_SERVICE,
            priority=40,
        ),
        Template(
            "card_use_reminder",
            _l("Periodic card-use reminder"),
            _l("After a count card is used, remind every period while uses are left."),
            "behaviour",
            (Param("every_days", "int", 30, 1), Param("at", "time", "10:00")),
            _message(),
            CARD_USE_REMINDER,
            priority=20,
            withdraw_on=("card_used", "appointment_booked"),
        ),
        Template(
            "card_expiry",
            _l("Card expiry reminder"),
            _l("Remind customers before a card expires."),
            "recurring",
            (Param("days_before", "int", 30, 0), Param("at", "time", "10:00")),
            _message(),
            CARD_EXPIRY,
            priority=20,
            withdraw_on=("card_used", "top_up", "appointment_booked"),
        ),
        Template(
            "count_card_low",
            _l("Count card running low"),
            _l("Follow up when a count card has only a few uses left."),
            "recurring",
            (Param("remaining_uses_at_most", "int", 2, 0), Param("at", "time", "09:00")),
            _followup(),
            COUNT_CARD_LOW,
            priority=30,
            withdraw_on=("top_up", "appointment_booked", "purchase"),
        ),
        Template(
            "balance_low",
            _l("Stored-value card low balance"),
            _l("Follow up when a stored-value card's balance is low."),
            "recurring",
            (Param("balance_at_most", "decimal", 500, 0), Param("at", "time", "09:00")),
            _followup(),
            BALANCE_LOW,
            priority=30,
            withdraw_on=("top_up", "appointment_booked"),
        ),
        Template(
            "birthday",
            _l("Birthday"),
            _l("Greet customers on (or some days before) their birthday."),
            "recurring",
            (Param("days_before", "int", 0, 0), Param("at", "time", "10:00")),
            _message(),
            BIRTHDAY,
            priority=60,
            withdraw_on=(),
        ),
        Template(
            "service_interval",
            _l("Service interval reminder"),
            _l(
                "Remind customers when their next service is due; a stronger offer later "
                "only for those who did not come back."
            ),
            "recurring",
            (
                Param("days_after_last_visit", "int", 173, 1),
                Param("promo_days_after_last_visit", "int", 195, 1),
                Param("at", "time", "10:00"),
            ),
            _message(),
            SERVICE_REMINDER,
            priority=10,
            step_scripts=(SERVICE_PROMO,),
        ),
        Template(
            "points_reminder",
            _l("Points balance reminder"),
            _l("Tell customers their points balance every few weeks."),
            "recurring",
            (Param("every_days", "int", 28, 1), Param("at", "time", "10:00")),
            _message(),
            POINTS_REMINDER,
            priority=80,
            withdraw_on=(),
            audience={"all": [{"field": "points", "op": "gt", "value": 0}]},
        ),
    )
}

# Where a behaviour template's trigger comes from.
TRIGGERS = {
    "second_visit": ("visit", "service_completed", "purchase"),
    "post_service": ("service_completed",),
    "card_use_reminder": ("card_used",),
}


def defaults(template: Template) -> dict:
    """The template's parameters with their defaults."""
    return {p.name: p.default for p in template.params}


def build(template: Template, params: dict) -> dict:
    """Schedule, trigger and steps a template implies for the given (validated) parameters."""
    at = params.get("at", "10:00")
    out: dict = {"schedule": None, "trigger": None, "steps": None}
    key = template.key
    if key == "member_day":
        out["schedule"] = {
            "rrule": schedule.monthly_rule(int(params["day_of_month"])),
            "at": at,
            "offset_days": int(params["remind_days_before"]),
        }
    elif key == "points_reminder":
        out["schedule"] = {"rrule": schedule.daily_rule(int(params["every_days"])), "at": at}
    elif template.type == "recurring":
        out["schedule"] = {"rrule": schedule.daily_rule(), "at": at}
    else:
        trigger = {"event": list(TRIGGERS[key]), "at": at}
        if key == "card_use_reminder":
            trigger.update(
                delay_days=int(params["every_days"]), every_days=int(params["every_days"])
            )
        else:
            trigger["delay_days"] = int(params["days_after"])
        if params.get("products"):
            trigger["products"] = list(params["products"])
        if key == "second_visit":
            trigger["first_visit_only"] = True
        out["trigger"] = trigger
    if key == "service_interval":
        gap = int(params["promo_days_after_last_visit"]) - int(params["days_after_last_visit"])
        out["steps"] = [
            {"after_days": 0},
            {
                "after_days": gap,
                "action": {"kind": "message", "script": dict(template.step_scripts[0])},
                "only_if_not_back": True,
            },
        ]
    return out


def template_list() -> list[dict]:
    """Every template as GET /plan-templates shows it."""
    items = []
    for t in TEMPLATES.values():
        item = {
            "key": t.key,
            "name": str(t.name),
            "description": str(t.description),
            "type": t.type,
            "default_action": dict(t.action, script=dict(t.scripts)),
            "params": [{"name": p.name, "type": p.type, "default": p.default} for p in t.params],
            "priority": t.priority,
            "default_audience": t.audience,
        }
        if t.step_scripts:
            built = build(t, defaults(t))
            item["steps"] = [
                {"after_days": 0, "action": {"kind": t.action["kind"]}, "script": "default"},
                {
                    "after_days": built["steps"][1]["after_days"],
                    "action": {"kind": "message"},
                    "only_if_not_back": True,
                    "branches": [],
                },
            ]
        items.append(item)
    return items
