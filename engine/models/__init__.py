"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from engine.models.analytics import AmbassadorStats, DailyForwards, ForwardStats, MetricCell, RollupState, Visit
from engine.models.audit import (
    Consent,
    ConsentPurpose,
    ConsentSource,
    OptOutAction,
    OptOutEntry,
    OptOutLogHead,
    Rejection,
)
from engine.models.campaigns import Campaign, CampaignEvent, CampaignStatus, CampaignTemplate, TemplateName
from engine.models.coupons import Coupon, CouponSource, Redemption
from engine.models.events import ProviderEvent
from engine.models.forwards import Click, Forward
from engine.models.messages import Message, MessageStatus
from engine.models.outbox import OutboxMessage
from engine.models.referrers import Referrer
from engine.models.rewards import Reward, RewardFlag, RewardProgram, RewardStatus
from engine.models.suppression import Suppression, SuppressionScope, SuppressionSource
from engine.models.upgrades import PendingUpgrade
from engine.models.users import DEFAULT_TEAM, ROLE_SCOPES, ApiKey, Role, Scope, User

__all__ = [
    "DEFAULT_TEAM",
    "ROLE_SCOPES",
    "AmbassadorStats",
    "ApiKey",
    "Campaign",
    "CampaignEvent",
    "CampaignStatus",
    "CampaignTemplate",
    "Click",
    "Consent",
    "ConsentPurpose",
    "ConsentSource",
    "Coupon",
    "CouponSource",
    "DailyForwards",
    "Forward",
    "ForwardStats",
    "Message",
    "MessageStatus",
    "MetricCell",
    "OptOutAction",
    "OptOutEntry",
    "OptOutLogHead",
    "OutboxMessage",
    "PendingUpgrade",
    "ProviderEvent",
    "Redemption",
    "Referrer",
    "Rejection",
    "Reward",
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
    "Visit",
]
