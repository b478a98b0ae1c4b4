"""SQLAlchemy models, one module per aggregate. Importing this package registers them all.
(`TemplateName`, the template files a campaign has, lives in engine.template_files.)"""

from engine.models.analytics import (
    AmbassadorStats,
    DailyCohort,
    DailyForwards,
    ForwardReach,
    ForwardStats,
    MetricCell,
    RollupState,
    VariantVisit,
    VideoPlay,
    Visit,
)
from engine.models.audit import (
    Consent,
    ConsentPurpose,
    ConsentSource,
    OptOutAction,
    OptOutEntry,
    OptOutLogHead,
    Rejection,
)
from engine.models.campaigns import (
    Campaign,
    CampaignEvent,
    CampaignImage,
    CampaignSnapshotVersion,
    CampaignStatus,
    CampaignTemplate,
    CampaignVariant,
)
from engine.models.contests import Contest, ContestMetric, ContestWinner, NoticeState
from engine.models.coupons import Coupon, CouponSource, Redemption
from engine.models.events import ProviderEvent
from engine.models.forwards import Click, Forward
from engine.models.idempotency import IdempotencyRecord
from engine.models.messages import Message, MessageStatus
from engine.models.outbox import OutboxMessage
from engine.models.referrers import Referrer
from engine.models.rewards import (
    PayoutMethod,
    PayoutState,
    Reward,
    RewardCode,
    RewardEvent,
    RewardFlag,
    RewardProgram,
    RewardStatus,
)
from engine.models.suppression import Suppression, SuppressionScope, SuppressionSource
from engine.models.upgrades import PendingUpgrade
from engine.models.users import DEFAULT_TEAM, ROLE_SCOPES, ApiKey, Role, Scope, User
from engine.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from engine.template_files import TemplateName

__all__ = [
    "DEFAULT_TEAM",
    "ROLE_SCOPES",
    "AmbassadorStats",
    "ApiKey",
    "Campaign",
    "CampaignEvent",
    "CampaignImage",
    "CampaignSnapshotVersion",
    "CampaignStatus",
    "CampaignTemplate",
    "CampaignVariant",
    "Click",
    "Consent",
    "ConsentPurpose",
    "ConsentSource",
    "Contest",
    "ContestMetric",
    "ContestWinner",
    "Coupon",
    "CouponSource",
    "DailyCohort",
    "DailyForwards",
    "DeliveryStatus",
    "Forward",
    "ForwardReach",
    "ForwardStats",
    "IdempotencyRecord",
    "Message",
    "MessageStatus",
    "MetricCell",
    "NoticeState",
    "OptOutAction",
    "OptOutEntry",
    "OptOutLogHead",
    "OutboxMessage",
    "PayoutMethod",
    "PayoutState",
    "PendingUpgrade",
    "ProviderEvent",
    "Redemption",
    "Referrer",
    "Rejection",
    "Reward",
    "RewardCode",
    "RewardEvent",
    "RewardFlag",
    "RewardProgram",
    "RewardStatus",
    "Role",
    "RollupState",
    "Scope",
    "Suppression",
    "SuppressionScope",
    "SuppressionSource",
    "TemplateName",
    "User",
    "VariantVisit",
    "VideoPlay",
    "Visit",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
