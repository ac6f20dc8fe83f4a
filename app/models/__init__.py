"""Every model of Revisit; ALL_MODELS is what the migrations must produce."""

from app.models.cards import CardProduct, CustomerCard
from app.models.customers import (
    Consent,
    ConsentChange,
    Customer,
    CustomerAttribute,
    CustomerTag,
    Segment,
    Tag,
    TagRule,
    Visit,
)
from app.models.events import CardLedger, Event, EventItem
from app.models.followups import ContactLog, FollowUp, FollowUpReason
from app.models.imports import ImportBatch
from app.models.loyalty import Coupon, PointsEntry, Reward
from app.models.message_templates import MessageTemplate, MessageTemplateVariant
from app.models.messages import ChannelSetting, Message, MessageStatusChange
from app.models.org import (
    ApiRateWindow,
    ApiToken,
    AuditLog,
    LoginEvent,
    Notice,
    Staff,
    StaffLeave,
    StaffSession,
    StaffStore,
    Store,
)
from app.models.plans import (
    Decision,
    Enrollment,
    Occurrence,
    Plan,
    PlanVersion,
    SchedulerLock,
    WhyLog,
)

ALL_MODELS = [
    Store,
    Staff,
    StaffStore,
    StaffLeave,
    StaffSession,
    LoginEvent,
    ApiToken,
    ApiRateWindow,
    AuditLog,
    Notice,
    Customer,
    Visit,
    Tag,
    CustomerTag,
    CustomerAttribute,
    Consent,
    ConsentChange,
    Segment,
    TagRule,
    CardProduct,
    CustomerCard,
    Event,
    EventItem,
    CardLedger,
    Plan,
    PlanVersion,
    Occurrence,
    Enrollment,
    Decision,
    WhyLog,
    SchedulerLock,
    FollowUp,
    FollowUpReason,
    ContactLog,
    Message,
    MessageStatusChange,
    ChannelSetting,
    MessageTemplate,
    MessageTemplateVariant,
    PointsEntry,
    Reward,
    Coupon,
    ImportBatch,
]

__all__ = [m.__name__ for m in ALL_MODELS] + ["ALL_MODELS"]
