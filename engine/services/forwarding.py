"""Forwarding use cases: a consumer forwards an offer to friends; a friend follows a link.

A submission is checked against the campaign and its consent policy, then written
in one transaction: a Forward per friend and a Message per forward. Delivery is
enqueued only after the commit, so a worker never looks for rows that are not
there yet, and a failed enqueue loses nothing (the sweeper finds `queued` rows).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from flask_babel import gettext, ngettext
from sqlalchemy import Boolean, Select, String, column, func, insert, literal, select, union_all
from sqlalchemy.orm import Session, contains_eager, joinedload

from engine.caps import CapSettings, Limiter, Rule, network_of, submission_rules
from engine.challenge import threshold_rule
from engine.channels import ComposedMessage, MessageLinks, by_template
from engine.channels import channel as channel_named
from engine.clock import Clock, SystemClock
from engine.contacts import Contact, ContactHasher, is_disposable
from engine.db import Database
from engine.ids import new_public_id
from engine.models import Campaign, Click, Forward, Message, MessageStatus, Rejection, TemplateName
from engine.policy import ConsentPolicy, policy_for
from engine.queue import JobQueue, QueueUnavailable
from engine.rendering import RenderError, TemplateRenderer, default_templates
from engine.services.composer import campaign_sending, compose
from engine.services.consents import consented_query
from engine.services.coupons import GENERATED_CODE_LENGTH
from engine.services.delivery import Links
from engine.services.lookups import SLUG, CampaignLanguage, check_open, load_open_campaign
from engine.services.snapshots import CampaignSnapshots
from engine.services.suppression import suppressed_query
from engine.services.template_context import offer_title
from engine.services.variants import CampaignVariants, Inheritance, Variant, VariantAssigner
from engine.services.webhooks import publish
from engine.sharing import ShareButton
from engine.tokens import FORM_MAX_AGE_SECONDS, InvalidToken, Purpose, Tokens

log = logging.getLogger(__name__)


def _printable(text: str) -> str:
    """Control characters dropped: headers are client input, and PostgreSQL refuses NUL in text."""
    return "".join(ch for ch in text if ch.isprintable())


class _ForwardFacts(Protocol):
    """What a webhook event says of a forward (a Forward, or a row about to be written)."""

    @property
    def public_id(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def channel(self) -> str: ...


@dataclass(frozen=True)
class _NewForward:
    public_id: str
    generation: int
    channel: str


def _forward_event(
    campaign: Campaign, forward: _ForwardFacts, parent: Forward | None, via: str | None
) -> dict[str, Any]:
    """What a webhook says of a forward: public ids and its place in the chain, never a contact."""
    event: dict[str, Any] = {
        "campaign": campaign.slug,
        "forward": forward.public_id,
        "parent_forward": parent.public_id if parent else None,
        "generation": forward.generation,
        "channel": forward.channel,
    }
    if via is not None:
        event["via"] = via  # the form, or a share button's name
    return event


def _advisory_key(contact_hash: str) -> int:
    """A signed 64-bit lock id for one friend (or, prefixed "stamp:", one render stamp)."""
    digest = hashlib.blake2b(f"friend:{contact_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Each friend gets at most `messages_per_recipient_per_30_days` offers in this period; a message
# held back (suppressed, or over this very cap) was no offer.
RECIPIENT_CAP_PERIOD = timedelta(days=30)
HELD_BACK = (MessageStatus.SUPPRESSED, MessageStatus.CAPPED)


@dataclass(frozen=True)
class ForwardSubmission:
    sender_name: str
    friends: Sequence[Contact]
    sender_contact: Contact | None = None
    note: str | None = None
    referrer_token: str | None = None
    client_ip: str | None = None
    # The client solved a proof of work (engine.challenge): the soft threshold does not apply.
    challenge_solved: bool = False
    # The sender has seen the message this very submission sends (its digest, signed): what a
    # policy with preview_required (eu-strict) asks before anything is written.
    previewed: bool = False
    # The random part of the form's render stamp: a stamp sends one forward (FORM_SENT_TWICE).
    form_stamp: str | None = None
    # The language the sender used (one of the campaign's locales): kept with each forward, so
    # that the friend's message and pages speak it. None: the campaign's default.
    locale: str | None = None
    # The campaign's languages and phone regions the form was read with (campaign_language):
    # when the campaign has others by the time it is submitted, CampaignChanged.
    read_with: CampaignLanguage | None = None
    # The signed A/B variant whose page the sender saw (engine.services.variants): their forwards
    # are its. None, or a token not of this campaign: the variant of the forward they came
    # through (inheriting campaigns), else none.
    variant_token: str | None = None

    def digest(self, slug: str) -> str:
        """What the sender previewed, and for which campaign: a change to any field (or another
        campaign) makes a new preview necessary."""
        parts = [
            slug,
            self.sender_name,
            self.sender_contact.value if self.sender_contact else "",
            self.note or "",
            self.referrer_token or "",
            *(friend.value for friend in self.friends),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ForwardReceipt:
    friend_count: int
    # Forwards written; may be fewer than friends, since friends already invited are
    # skipped without telling the sender (who must not learn who was invited before).
    # message_ids are the messages queued: a suppressed friend's message is not among them.
    forward_ids: tuple[int, ...]
    message_ids: tuple[int, ...]
    enqueued: bool


class ForwardRejected(Exception):
    """The submission breaks a rule; `errors` maps form fields to messages for the sender."""

    def __init__(self, errors: dict[str, list[str]], friends: dict[int, list[str]] | None = None) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors
        # The `friend` messages about one friend, by the friend's position (1-based) in the
        # submission: the form shows each beside the input it was typed in.
        self.friends = friends or {}


@dataclass(frozen=True)
class Referrer:
    """The forward a visitor arrived through, as the landing page may show it."""

    public_id: str
    sender_name: str
    generation: int
    channel: str
    # The language the sender used, which the visitor's page then speaks.
    locale: str | None = None
    # The A/B variant the sender saw (None: none), which an inheriting campaign shows the visitor.
    variant_id: int | None = None


@dataclass(frozen=True)
class FollowedLink:
    campaign_slug: str
    forward_public_id: str
    # The sender's language, which the friend's landing page speaks (None: the campaign decides).
    locale: str | None = None


def at_most_friends(limit: int) -> str:
    """The refusal of more friends than a campaign takes at once."""
    return ngettext(
        "You can send this offer to one friend at a time.",
        "You can send this offer to at most %(num)d friends at a time.",
        limit,
    )


def _forward_locale(campaign: Campaign, requested: str | None) -> str:
    """The language a forward keeps: the sender's, which the form has checked is one of the
    campaign's (checked again here: a value it does not offer is never stored), else its default."""
    if requested is not None and requested not in (campaign.locales or ()):
        raise ForwardRejected({"locale": [gettext("Choose one of the languages this offer is in.")]})
    return requested or campaign.default_locale


@dataclass
class _Errors:
    by_field: dict[str, list[str]] = field(default_factory=dict)
    by_friend: dict[int, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, []).append(message)

    def add_friend(self, position: int, message: str) -> None:
        self.add("friend", message)
        self.by_friend.setdefault(position, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ForwardRejected(self.by_field, self.by_friend)


@dataclass(frozen=True)
class SharedForward:
    public_id: str
    offer_title: str
    brand_name: str
    # The A/B variant's own words for the share (None: the offer's title and brand).
    share_text: str | None = None


class PreviewRequired(Exception):
    """The campaign's policy lets nothing go before the sender has seen the message."""


@dataclass(frozen=True)
class ForwardPreview:
    """The message the friends of a submission would get, as the sender sees it first. Links
    are stand-ins: each friend gets their own, made when the forward is written."""

    subject: str
    html: str
    text: str
    digest: str
    friend_count: int


PREVIEW_LINK = "https://example.invalid/your-friends-personal-link"
PREVIEW_UNSUBSCRIBE_LINK = "https://example.invalid/their-unsubscribe-link"
PREVIEW_COUPON_CODE = "(each friend's own code)"
# Whom the sender's preview is composed for: nobody (RFC 2606's .invalid).
PREVIEW_ADDRESS = "friend@example.invalid"


# The reason a submission whose render stamp was already spent is refused: a replayed form, or a
# double click whose first click went through.
FORM_SENT_TWICE = "form sent twice"


class ForwardCapped(Exception):
    """A volume cap refuses the submission; nothing was written."""

    def __init__(self, cap: str, retry_after: timedelta | None) -> None:
        super().__init__(cap)
        self.cap = cap
        self.retry_after = retry_after  # None: not within this cap's period (a total budget)


# What each row of the friends' one read is about (ForwardingService._friends_on_record).
_FORWARD = "forward"
_SUPPRESSED = "suppressed"
_CONSENTED = "consented"


def _tagged(query: Select[str], kind: str) -> Select[str, str, bool, bool]:
    """A query of contact hashes as rows of the friends' one read (its two flags unused)."""
    return query.with_only_columns(
        literal(kind, String), *query.selected_columns, literal(False, Boolean), literal(False, Boolean)
    )


@dataclass
class _OnRecord:
    """What the database holds about a submission's friends, each by their contact hash."""

    invited: set[str] = field(default_factory=set)
    had_their_fill: set[str] = field(default_factory=set)
    suppressed: set[str] = field(default_factory=set)
    without_consent: set[str] = field(default_factory=set)


class CampaignChanged(Exception):
    """The campaign's languages or phone regions changed between reading the form and submitting
    it: nothing was written or counted, and the form is to be read again."""


class ForwardingService:
    def __init__(
        self,
        db: Database,
        tokens: Tokens,
        hasher: ContactHasher,
        queue: JobQueue,
        limiter: Limiter,
        renderer: TemplateRenderer | None = None,
        links: Links | None = None,
        *,
        clock: Clock | None = None,
        snapshots: CampaignSnapshots | None = None,
        default_phone_region: str = "US",
    ) -> None:
        self._db = db
        # Where a number is read for a campaign of no region of its own (the installation's).
        self._default_phone_region = default_phone_region
        self._snapshots = snapshots or CampaignSnapshots(db)
        self._renderer = renderer or TemplateRenderer()
        # Where links in messages point: a text is measured with links as long as the real ones.
        self._links = links or Links("https://example.invalid", tokens)
        self._tokens = tokens
        # Reads the signed variants forms carry (the draw itself is the landing page's).
        self._variants = VariantAssigner(tokens)
        self._hasher = hasher
        self._queue = queue
        self._limiter = limiter
        self._clock = clock or SystemClock()

    def submit(self, slug: str, submission: ForwardSubmission) -> ForwardReceipt:
        """Raises CampaignUnavailable, ForwardRejected, ForwardCapped or CapsUnavailable
        (fail closed: without Redis the caps cannot be checked, so nothing is accepted)."""
        try:
            with self._db.transaction() as session:
                snapshot = self._snapshots.open(session, slug, self._clock.now())
                if submission.read_with not in (None, snapshot.language(self._default_phone_region)):
                    raise CampaignChanged(slug)
                campaign, policy = snapshot.campaign, snapshot.policy
                snapshot.publish_to(session)
                if policy.preview_required and not submission.previewed:
                    raise PreviewRequired()
                parent = self._parent_forward(session, campaign, submission.referrer_token)
                variant = self._variant_of(campaign.id, snapshot.variants, submission.variant_token, parent)
                _forward_locale(campaign, submission.locale)
                recipients = self._checked_recipients(campaign, policy, submission)
                self._check_typed_input(campaign, submission, recipients, variant)
                caps = snapshot.caps
                self._lock(session, recipients, submission.form_stamp)
                checked = self._friends_on_record(session, campaign, policy, recipients, caps)
                new = {h: c for h, c in recipients.items() if h not in checked.invited}
                held = {h: MessageStatus.SUPPRESSED for h in new if h in checked.suppressed}
                # Friends the policy may text only with their own consent, and who gave none, are
                # held back like suppressed ones: the sender is not told who has consented.
                held |= {h: MessageStatus.SUPPRESSED for h in new if h in checked.without_consent}
                # Friends over their cap are quietly held back, like suppressed ones.
                held |= {h: MessageStatus.CAPPED for h in new if h in checked.had_their_fill and h not in held}
                self._acquire_caps(session, campaign, caps, submission, len(recipients))
                forward_ids, message_ids = self._write(
                    session, campaign, policy, submission, parent, new, held=held, variant=variant
                )
        except ForwardCapped as capped:
            self._record_rejection(slug, capped.cap, submission.client_ip)
            raise
        enqueued = self._enqueue_delivery(message_ids)
        return ForwardReceipt(len(submission.friends), forward_ids, message_ids, enqueued)

    def preview(self, slug: str, submission: ForwardSubmission) -> ForwardPreview:
        """The email the friends would get, after every check a submission meets (nothing is
        written, no cap is used). Raises CampaignUnavailable, ForwardRejected, RenderError."""
        with self._db.reading() as session:
            campaign = load_open_campaign(session, slug, self._clock.now(), with_logo=True)
            parent = self._parent_forward(session, campaign, submission.referrer_token)
            variants = CampaignVariants.of(campaign.variants, campaign.variant_inheritance)
            variant = self._variant_of(campaign.id, variants, submission.variant_token, parent)
            policy = policy_for(campaign.policy_name, campaign.policy_settings)
            locale = _forward_locale(campaign, submission.locale)
            self._checked_recipients(campaign, policy, submission)
            values = {
                "sender_name": submission.sender_name,
                "note": submission.note or "",
                "coupon_code": PREVIEW_COUPON_CODE if campaign.coupon_mode != "none" else "",
            }
            links = MessageLinks(PREVIEW_LINK, PREVIEW_UNSUBSCRIBE_LINK)
            # The sender previews what their friends will get: in the language they chose.
            sending = campaign_sending(
                campaign, default_templates(), policy, locale, variant, public_base_url=self._links.base_url
            )
            # The page shows the e-mail templates' message: whichever channel renders them.
            shown = by_template(TemplateName.EMAIL_HTML)
            if shown is None:
                raise RenderError("no channel renders the e-mail templates")
            message = compose(sending, Contact(shown.name, PREVIEW_ADDRESS), values, links, new_public_id())
            email = shown.render(self._renderer, message)
        return ForwardPreview(email.subject, email.html, email.text, submission.digest(slug), len(submission.friends))

    def share(
        self,
        slug: str,
        channel: ShareButton,
        referrer_token: str | None,
        client_ip: str | None,
        *,
        locale: str | None = None,
        variant_token: str | None = None,
    ) -> SharedForward:
        """A tracked forward for the consumer to share themselves (no message is sent, no contact
        kept). Counted against the same per-address caps as the form, so that share links cannot
        be minted in bulk. Raises CampaignUnavailable, ForwardRejected, ForwardCapped, CapsUnavailable."""
        try:
            with self._db.transaction() as session:
                campaign = load_open_campaign(session, slug, self._clock.now(), with_templates=False)
                parent = self._parent_forward(session, campaign, referrer_token)
                variants = CampaignVariants.of(campaign.variants, campaign.variant_inheritance)
                variant = self._variant_of(campaign.id, variants, variant_token, parent)
                sharer = ForwardSubmission(sender_name="", friends=(), client_ip=client_ip, challenge_solved=True)
                self._acquire_caps(session, campaign, CapSettings.from_overrides(campaign.caps), sharer, 0)
                policy = policy_for(campaign.policy_name, campaign.policy_settings)
                public_id = new_public_id()
                forward = Forward(
                    public_id=public_id,
                    campaign_id=campaign.id,
                    parent_id=parent.id if parent else None,
                    generation=parent.generation + 1 if parent else 1,
                    channel=channel.forward_channel,
                    # A visitor shares without giving a name: their friends see no one named.
                    sender_name="",
                    # No one's contact: a share goes to whoever the consumer sends it to.
                    recipient_contact_hash=self._hasher.hash_text(f"share:{public_id}"),
                    policy_name=policy.name,
                    policy_version=policy.version,
                    client_ip_hash=self._hash_ip(client_ip),
                    client_network_hash=self._hash_sender_network(client_ip),
                    locale=_forward_locale(campaign, locale),
                    variant_id=variant.id if variant is not None else None,
                )
                session.add(forward)
                session.flush()
                event = _forward_event(campaign, forward, parent, channel.value)
                publish(session, "forward.created", event, now=self._clock.now())
                shared = SharedForward(
                    forward.public_id,
                    offer_title(campaign, variant),
                    campaign.brand_name,
                    variant.share_text if variant is not None else None,
                )
        except ForwardCapped as capped:
            self._record_rejection(slug, capped.cap, client_ip)
            raise
        return shared

    def campaign_language(self, slug: str) -> CampaignLanguage | None:
        """The languages and phone regions of the campaign with this slug (open or not), or
        None: what its form is read with. From this process's copy as it is, without asking the
        database: `submit` checks it against the campaign as committed (ForwardSubmission.read_with)."""
        snapshot = self._snapshots.kept(slug)
        if snapshot is None:
            with self._db.reading() as session:
                snapshot = self._snapshots.current(session, slug)
        return snapshot.language(self._default_phone_region) if snapshot is not None else None

    def language_changed(self, slug: str, read_with: CampaignLanguage | None) -> bool:
        """Whether the campaign's languages or phone regions as committed now differ from those a
        form was read with (a form refused by them is to be read again). Asked only of a form
        that failed its checks: the one that passes is checked in `submit`'s transaction."""
        if read_with is None:
            return False
        with self._db.reading() as session:
            snapshot = self._snapshots.current(session, slug)
        return snapshot is None or snapshot.language(self._default_phone_region) != read_with

    def record_rejection(self, slug: str, reason: str, client_ip: str | None) -> None:
        """Keep the trace of a refused request (a bot's honeypot, a form sent too fast)."""
        self._record_rejection(slug, reason, client_ip)

    def referrer(self, slug: str, token: str | None) -> Referrer | None:
        """The forward behind a visitor's referral token, if it is genuine and of this campaign."""
        if not token:
            return None
        try:
            public_id = self._tokens.verify(Purpose.FORWARD, token)
        except InvalidToken:  # forged, expired or of another purpose: a visitor like any other
            return None
        with self._db.reading() as session:
            # The forward and its campaign in one round trip; a forward of another campaign is none.
            forward = session.scalar(
                select(Forward)
                .join(Campaign, Campaign.id == Forward.campaign_id)
                .where(Forward.public_id == public_id, Campaign.slug == slug)
                .options(contains_eager(Forward.campaign))
            )
            if forward is None:
                return None
            check_open(forward.campaign, self._clock.now())
            return Referrer(
                forward.public_id,
                forward.sender_name,
                forward.generation,
                forward.channel,
                forward.locale,
                forward.variant_id,
            )

    def follow_link(
        self, token: str, client_ip: str | None, user_agent: str | None, *, prefetch: bool = False
    ) -> FollowedLink:
        """Record a click on a tracked link, or a prefetch (`prefetch`: a link preview or a mail
        scanner, engine.visitors) apart from the clicks: no event for the webhooks, and no
        referral. One row written either way. Raises InvalidToken / ExpiredToken, CampaignUnavailable."""
        public_id = self._tokens.verify(Purpose.FORWARD, token)
        with self._db.transaction() as session:
            # The forward and its campaign in one round trip.
            query = select(Forward).where(Forward.public_id == public_id).options(joinedload(Forward.campaign))
            forward = session.scalar(query)
            if forward is None:
                raise InvalidToken("no forward behind this token")
            now = self._clock.now()
            campaign = forward.campaign
            check_open(campaign, now)
            if not prefetch:
                publish(session, "forward.clicked", _forward_event(campaign, forward, forward.parent, None), now=now)
            session.add(
                Click(
                    forward_id=forward.id,
                    client_ip_hash=self._hash_ip(client_ip),
                    user_agent=_printable(user_agent or "")[:256] or None,
                    prefetch=prefetch,
                )
            )
            locale = forward.locale if forward.locale in (campaign.locales or ()) else None
            return FollowedLink(campaign.slug, forward.public_id, locale)

    # -- steps of a submission -------------------------------------------------------

    def _variant_of(
        self, campaign_id: int, variants: CampaignVariants, token: str | None, parent: Forward | None
    ) -> Variant | None:
        """The A/B variant a forward is attributed to: the one the form was shown in (signed);
        else, in a campaign that inherits, the one of the forward the sender came through."""
        if not variants.variants:
            return None
        shown = self._variants.attributed(campaign_id, variants, token)
        if shown is not None:
            return shown
        if parent is not None and variants.inheritance == Inheritance.INHERIT:
            return variants.by_id(parent.variant_id)
        return None

    def _parent_forward(self, session: Session, campaign: Campaign, token: str | None) -> Forward | None:
        if not token:
            return None
        try:
            public_id = self._tokens.verify(Purpose.FORWARD, token)
        except InvalidToken:
            raise ForwardRejected({"ref": [gettext("The invitation link this page came from is not valid.")]}) from None
        parent = session.scalar(select(Forward).where(Forward.public_id == public_id))
        if parent is None or parent.campaign_id != campaign.id:
            raise ForwardRejected({"ref": [gettext("The invitation link this page came from is not for this offer.")]})
        return parent

    def _checked_recipients(
        self, campaign: Campaign, policy: ConsentPolicy, submission: ForwardSubmission
    ) -> dict[str, Contact]:
        """The friends keyed by contact hash, after the campaign's and the policy's rules."""
        errors = _Errors()
        friends = submission.friends
        if not friends:
            errors.add("friend", gettext("Enter at least one friend's email address or phone number."))
        if len(friends) > campaign.max_friends_per_submission:
            errors.add("friend", at_most_friends(campaign.max_friends_per_submission))
        errors.raise_if_any()

        sender_hash = self._hasher.hash(submission.sender_contact) if submission.sender_contact else None
        if submission.sender_contact and is_disposable(submission.sender_contact):
            errors.add(
                "sender_contact",
                gettext("Please use an address of your own, not one from a disposable mail service."),
            )
        recipients: dict[str, Contact] = {}
        for position, friend in enumerate(friends, start=1):
            if is_disposable(friend):
                errors.add_friend(
                    position,
                    gettext(
                        "Friend %(position)s: addresses from disposable mail services can't receive offers.",
                        position=position,
                    ),
                )
                continue
            if friend.channel not in campaign.channels or not policy.may_offer(friend.channel):
                errors.add_friend(position, channel_named(friend.channel).not_offered_problem(position))
                continue
            contact_hash = self._hasher.hash(friend)
            if contact_hash == sender_hash:
                errors.add_friend(position, channel_named(friend.channel).own_contact_problem(position))
            elif contact_hash in recipients:
                errors.add_friend(
                    position, gettext("Friend %(position)s: you entered this friend twice.", position=position)
                )
            recipients[contact_hash] = friend
        errors.raise_if_any()
        return recipients

    def _check_typed_input(
        self,
        campaign: Campaign,
        submission: ForwardSubmission,
        recipients: dict[str, Contact],
        variant: Variant | None = None,
    ) -> None:
        """What the sender typed may make a friend's message unsendable (a text over the
        campaign's segment limit): each channel the friends are on says so now, on the field
        at fault, before anything is written or counted."""
        friend_on = {friend.channel: friend for friend in recipients.values()}
        if not friend_on:
            return
        links = MessageLinks(
            self._links.forward(Forward(public_id=new_public_id())),
            self._links.unsubscribe(Message(public_id=new_public_id())),
        )
        coupon_code = "X" * GENERATED_CODE_LENGTH if campaign.coupon_mode != "none" else ""
        # Measured in the sender's language: a Dutch text is not as long as its English one.
        sending = campaign_sending(
            campaign,
            default_templates(),
            locale=submission.locale,
            variant=variant,
            public_base_url=self._links.base_url,
        )
        for name, friend in friend_on.items():

            def composed(sender_name: str, note: str, friend: Contact = friend) -> ComposedMessage:
                values = {"sender_name": sender_name, "note": note, "coupon_code": coupon_code}
                return compose(sending, friend, values, links)

            note = submission.note or ""
            problems = channel_named(name).typed_input_problems(self._renderer, composed, submission.sender_name, note)
            if problems:
                raise ForwardRejected(problems)

    def _legacy_hashes(self, recipients: dict[str, Contact]) -> dict[str, str]:
        """The hashes older versions kept for these friends (the address lowercased, before
        canonical identities), each to the friend's hash: an opt-out or a forward recorded
        then, and never rehashed (`flask contacts rehash` needs the plaintext), still counts."""
        return {old: h for h, friend in recipients.items() if (old := self._hasher.legacy_hash(friend)) is not None}

    def _acquire_caps(
        self, session: Session, campaign: Campaign, caps: CapSettings, submission: ForwardSubmission, friends: int
    ) -> None:
        """Count the submission against its caps, all or nothing (ForwardCapped if one refuses).
        One round trip to Redis (two for a stamp spent by a sending that wrote nothing)."""
        ip_hash = self._hash_ip(submission.client_ip)
        network = network_of(submission.client_ip) if submission.client_ip else None
        network_hash = self._hasher.hash_text(f"net:{network}") if network else None
        together = submission_rules(
            caps,
            campaign.id,
            ip_hash=ip_hash,
            network_hash=network_hash,
            sender_key=self._hasher.hash(submission.sender_contact) if submission.sender_contact else None,
            friends=friends,
        )
        # Past the soft threshold a client must have solved a challenge. Checked last in the
        # same call, so that a cap that refuses anyway is the one the sender is told about.
        if not submission.challenge_solved and (threshold := threshold_rule(caps, ip_hash)) is not None:
            together.append(threshold)
        if not submission.form_stamp:
            self._acquire(together)
            return
        # Spent once, in the same all-or-nothing call as the caps (no extra round trip), and
        # first, so that a replay is reported as one; kept for as long as a stamp is valid.
        # (A submission with a stamp holds its lock already: `_lock`.)
        stamp = Rule(FORM_SENT_TWICE, f"stamp:{submission.form_stamp}", 1, timedelta(seconds=FORM_MAX_AGE_SECONDS))
        try:
            self._acquire([stamp, *together])
        except ForwardCapped as capped:
            # A stamp is spent in Redis before the forwards are committed: when the commit
            # failed, or Redis spent it but its answer was lost, the browser's retry brings the
            # same stamp and nothing was written. Only a stamp that sent forwards is a replay.
            if capped.cap != FORM_SENT_TWICE or self._stamp_sent(session, submission.form_stamp):
                raise
            self._acquire(together)

    def _acquire(self, rules: list[Rule]) -> None:
        decision = self._limiter.acquire(rules)
        if not decision.allowed:
            assert decision.rule is not None
            raise ForwardCapped(decision.rule.name, decision.retry_after)

    @staticmethod
    def _stamp_sent(session: Session, form_stamp: str) -> bool:
        return session.scalar(select(Forward.id).where(Forward.form_stamp == form_stamp).limit(1)) is not None

    def _record_rejection(self, slug: str, reason: str, client_ip: str | None) -> None:
        log.info("forward to %s refused: %s", slug, reason)
        with self._db.transaction() as session:
            campaign_id = (
                session.scalar(select(Campaign.id).where(Campaign.slug == slug)) if SLUG.fullmatch(slug) else None
            )
            # On the app's clock: the cap report counts the last 24 hours of it.
            rejection = Rejection(
                campaign_id=campaign_id,
                reason=reason[:64],
                client_ip_hash=self._hash_ip(client_ip),
                created_at=self._clock.now(),
            )
            session.add(rejection)

    @staticmethod
    def _lock(session: Session, recipients: dict[str, Contact], form_stamp: str | None) -> None:
        """On PostgreSQL, lock each friend and the form's render stamp for the rest of the
        transaction, in one statement, in one order for every submission (no two wait on each
        other). A double-clicked submit, a second forward to the same friend or a replayed stamp
        can arrive at once: the second waits for the first to commit (or roll back), then sees
        its rows, so that no friend is messaged twice and a stamp sends one forward. Friends are
        locked whatever the campaign: the offers they had are counted across all.
        (SQLite needs no lock: BEGIN IMMEDIATE already runs writers one at a time.)"""
        if session.get_bind().dialect.name != "postgresql":
            return
        keys = [_advisory_key(h) for h in recipients]
        if form_stamp:
            keys.append(_advisory_key(f"stamp:{form_stamp}"))
        session.execute(
            select(func.pg_advisory_xact_lock(column("k"))).select_from(func.unnest(sorted(keys)).alias("k"))
        )

    def _friends_on_record(
        self,
        session: Session,
        campaign: Campaign,
        policy: ConsentPolicy,
        recipients: dict[str, Contact],
        caps: CapSettings,
    ) -> _OnRecord:
        """What the database holds about these friends, in one round trip: whom this campaign
        already invited, who had their fill of offers in the last 30 days (from any campaign),
        who is suppressed for this campaign on their channel, and who lacks the consent the
        policy asks of their channel. Read after `_lock`, so a submission racing this one has
        committed (or given up) by now.

        The per-recipient cap is counted here rather than in Redis: it protects people over a
        month, and must survive a Redis restart that forgets every counter."""
        # The hashes older versions kept (engine.contacts.ContactHasher.legacy_hash) still count.
        legacy = self._legacy_hashes(recipients)
        by_channel: dict[str, list[str]] = {}
        needing_consent: dict[str, list[str]] = {}
        for contact_hash, friend in recipients.items():
            by_channel.setdefault(friend.channel, []).append(contact_hash)
            if policy.needs_consent(friend.channel):
                needing_consent.setdefault(friend.channel, []).append(contact_hash)
        for old_hash, contact_hash in legacy.items():
            by_channel[recipients[contact_hash].channel].append(old_hash)
        parts = [
            self._forwards_query(campaign, [*recipients, *legacy], caps),
            _tagged(suppressed_query(campaign.id, by_channel), _SUPPRESSED),
        ]
        if needing_consent:
            parts.append(_tagged(consented_query(campaign.id, needing_consent), _CONSENTED))
        record = _OnRecord()
        offers: Counter[str] = Counter()
        consented: set[str] = set()
        for kind, stored_hash, same_campaign, was_offered in session.execute(union_all(*parts)):
            contact_hash = legacy.get(stored_hash, stored_hash)
            if kind == _SUPPRESSED:
                record.suppressed.add(contact_hash)
            elif kind == _CONSENTED:
                consented.add(stored_hash)
            else:
                if same_campaign:
                    record.invited.add(contact_hash)
                if was_offered:
                    offers[contact_hash] += 1
        limit = caps.messages_per_recipient_per_30_days
        record.had_their_fill = {h for h, n in offers.items() if limit is not None and n >= limit}
        record.without_consent = {h for hashes in needing_consent.values() for h in hashes} - consented
        return record

    def _forwards_query(self, campaign: Campaign, hashes: list[str], caps: CapSettings) -> Select[str, str, bool, bool]:
        """The forwards to these hashes that count: this campaign's (an invitation), and, with a
        per-recipient cap, any campaign's offers of the last 30 days."""
        limit = caps.messages_per_recipient_per_30_days
        offered = (Forward.created_at >= self._clock.now() - RECIPIENT_CAP_PERIOD) & Message.status.not_in(HELD_BACK)
        return (
            select(
                literal(_FORWARD, String).label("kind"),
                Forward.recipient_contact_hash.label("contact_hash"),
                (Forward.campaign_id == campaign.id).label("same_campaign"),
                offered.label("offered"),
            )
            .join(Message, Message.forward_id == Forward.id)
            .where(
                Forward.recipient_contact_hash.in_(hashes),
                (Forward.campaign_id == campaign.id) | offered
                if limit is not None
                else Forward.campaign_id == campaign.id,
            )
        )

    def _write(
        self,
        session: Session,
        campaign: Campaign,
        policy: ConsentPolicy,
        submission: ForwardSubmission,
        parent: Forward | None,
        recipients: dict[str, Contact],
        *,
        held: dict[str, MessageStatus],
        variant: Variant | None = None,
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A forward and a message per friend; the ids of the forwards, and of the queued
        messages. A friend `held` back (suppressed, or over a cap) is recorded with that status
        and without their contact, so that compliance can show the attempt was stopped.
        Two INSERT … RETURNING statements of plain rows (no unit of work: nothing here is read
        back as an object)."""
        if not recipients:
            return (), ()
        sender_hash = self._hasher.hash(submission.sender_contact) if submission.sender_contact else None
        ip_hash = self._hash_ip(submission.client_ip)
        network_hash = self._hash_sender_network(submission.client_ip)
        now = self._clock.now()
        generation = parent.generation + 1 if parent else 1
        locale = _forward_locale(campaign, submission.locale)
        forwards: list[dict[str, Any]] = [
            {
                "public_id": new_public_id(),
                "campaign_id": campaign.id,
                "parent_id": parent.id if parent else None,
                "generation": generation,
                "channel": friend.channel,
                "sender_name": submission.sender_name,
                "sender_contact_hash": sender_hash,
                "recipient_contact_hash": contact_hash,
                "recipient_contact": friend.value if policy.keeps_contact and contact_hash not in held else None,
                "note": submission.note or None,
                "policy_name": policy.name,
                "policy_version": policy.version,
                "client_ip_hash": ip_hash,
                "client_network_hash": network_hash,
                "form_stamp": submission.form_stamp,
                "locale": locale,
                "variant_id": variant.id if variant is not None else None,
                "created_at": now,
            }
            for contact_hash, friend in recipients.items()
        ]
        forward_ids = tuple(
            session.scalars(insert(Forward.__table__).returning(Forward.id, sort_by_parameter_order=True), forwards)
        )
        statuses = [held.get(contact_hash, MessageStatus.QUEUED) for contact_hash in recipients]
        messages = [
            {
                "public_id": new_public_id(),
                "forward_id": forward_id,
                "channel": forward["channel"],
                "status": status,
                "policy_name": policy.name,
                "policy_version": policy.version,
                "created_at": now,
                "updated_at": now,
            }
            for forward_id, forward, status in zip(forward_ids, forwards, statuses, strict=True)
        ]
        message_ids = tuple(
            session.scalars(insert(Message.__table__).returning(Message.id, sort_by_parameter_order=True), messages)
        )
        for forward in forwards:
            written = _NewForward(forward["public_id"], generation, forward["channel"])
            publish(session, "forward.created", _forward_event(campaign, written, parent, "form"), now=now)
        queued = tuple(m for m, status in zip(message_ids, statuses, strict=True) if status == MessageStatus.QUEUED)
        return forward_ids, queued

    def _enqueue_delivery(self, message_ids: tuple[int, ...]) -> bool:
        if not message_ids:
            return True
        try:
            self._queue.request_dispatch()
        except QueueUnavailable:
            # The rows are committed and stay `queued`: the sweeper enqueues them again.
            log.exception("delivery of %d messages not enqueued; left for the sweeper", len(message_ids))
            return False
        return True

    def _hash_ip(self, client_ip: str | None) -> str | None:
        return self._hasher.hash_text(f"ip:{client_ip}") if client_ip else None

    def _hash_sender_network(self, client_ip: str | None) -> str | None:
        """One visitor's network: their IPv4 address, or the IPv6 /64 they pick addresses from."""
        return self._hasher.hash_text(f"net:{network_of(client_ip, ipv4_prefix=32)}") if client_ip else None
