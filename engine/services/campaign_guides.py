"""What the console says beside a campaign's caps and consent policy, derived from the code that
enforces them (engine.caps, engine.policy), so that the words cannot drift from the rules.

Each cap a campaign may override has a guide: its label, what it counts and over which window,
and its installation default. Each consent policy is explained in plain sentences built from
the policy's own fields: what the sender sees, whether incentives are allowed, how long a
friend's contact is kept, and whom the server may message on each channel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext

from engine.caps import DAY, HOUR, CapSettings
from engine.channels import ChannelRule, registered
from engine.policy import BUILT_IN, ConsentPolicy, Retention

THIRTY_DAYS = timedelta(days=30)


@dataclass(frozen=True)
class CapGuide:
    """One cap as the campaign form offers it. `rule_name` is the name the limiter counts it by
    (engine.caps.submission_rules; refusals are recorded by it); `window` None: in total, ever."""

    name: str
    label: str
    unit: str
    help: str
    window: timedelta | None
    rule_name: str | None
    # Counted per sender, address, network or friend (each their own count), not per campaign.
    per_person: bool

    @property
    def window_text(self) -> str:
        """The window the cap counts over, as the usage page says it."""
        if self.window is None:
            return _("in total, ever")
        if self.window == HOUR:
            return _("the last hour, rolling")
        if self.window == DAY:
            return _("the last 24 hours, rolling")
        return ngettext("the last %(num)s day, rolling", "the last %(num)s days, rolling", self.window.days)

    @property
    def default(self) -> int | None:
        """The installation's value when a campaign does not override it (None: no cap)."""
        value: int | None = getattr(CapSettings(), self.name)
        return value


CAP_GUIDES: tuple[CapGuide, ...] = (
    CapGuide(
        "friends_per_sender_per_day",
        lazy_gettext("Friends one sender may send to"),
        lazy_gettext("friends a day"),
        lazy_gettext(
            "Counted per sender (by the contact they type, else their address). An address gets ten "
            "senders' allowance and a network a hundred, since offices and mobile carriers share them."
        ),
        DAY,
        "friends per sender per day",
        True,
    ),
    CapGuide(
        "submissions_per_ip_per_hour",
        lazy_gettext("Submissions from one address"),
        lazy_gettext("submissions an hour"),
        lazy_gettext("How often one internet address may send the form."),
        HOUR,
        "submissions per IP per hour",
        True,
    ),
    CapGuide(
        "submissions_per_network_per_hour",
        lazy_gettext("Submissions from one network"),
        lazy_gettext("submissions an hour"),
        lazy_gettext("A network is a /24 or /64 block: one household, office or mobile carrier gateway."),
        HOUR,
        "submissions per network per hour",
        True,
    ),
    CapGuide(
        "messages_per_recipient_per_30_days",
        lazy_gettext("Offers one friend receives"),
        lazy_gettext("messages per 30 days"),
        lazy_gettext("Counted across every campaign: nobody gets more forwarded offers than this in 30 days."),
        THIRTY_DAYS,
        "messages per recipient per 30 days",
        True,
    ),
    CapGuide(
        "campaign_messages_per_day",
        lazy_gettext("Messages of the whole campaign"),
        lazy_gettext("messages a day"),
        lazy_gettext("Every friend of every sender together; the campaign's daily budget."),
        DAY,
        "campaign messages per day",
        False,
    ),
    CapGuide(
        "campaign_messages_total",
        lazy_gettext("Messages of the whole campaign, in total"),
        lazy_gettext("messages"),
        lazy_gettext("The campaign's whole budget: once it is used up, nothing more is sent."),
        None,
        "campaign messages in total",
        False,
    ),
    CapGuide(
        "challenge_after_submissions_per_ip_per_hour",
        lazy_gettext("Submissions from one address before a check"),
        lazy_gettext("submissions an hour"),
        lazy_gettext(
            "Not a cap: past this many submissions from one address in an hour, the browser must "
            "solve a small puzzle (a proof of work) before the next one is accepted."
        ),
        HOUR,
        None,
        True,
    ),
)

CAP_NAMES = tuple(guide.name for guide in CAP_GUIDES)


def cap_guide(name: str) -> CapGuide:
    return next(guide for guide in CAP_GUIDES if guide.name == name)


def default_hint(guide: CapGuide, shown: str | None) -> str:
    """ "Empty: the default, 10 friends a day." (`shown`: the default as the reader writes numbers)."""
    if guide.default is None:
        return _("Empty: the default, no cap.")
    return _("Empty: the default, %(value)s %(unit)s.", value=shown, unit=guide.unit)


def _every_cap_has_a_guide() -> None:
    # A cap added to CapSettings without a guide would be missing from the form: fail at import.
    missing = {f.name for f in fields(CapSettings)} ^ set(CAP_NAMES)
    if missing:
        raise RuntimeError(f"caps without a guide (or guides without a cap): {sorted(missing)}")


_every_cap_has_a_guide()


# -- consent policies -----------------------------------------------------------------------------

# A channel's messages as a sentence names them, by the noun the channel gives (message_noun).
PLURAL_NOUNS: dict[str, str] = {
    "e-mail": lazy_gettext("E-mails"),
    "text message": lazy_gettext("Text messages"),
    "WhatsApp message": lazy_gettext("WhatsApp messages"),
}


@dataclass(frozen=True)
class PolicyExplanation:
    name: str
    summary: str
    facts: tuple[str, ...]


_SUMMARIES: dict[str, str] = {
    "us": lazy_gettext("For the United States (CAN-SPAM, TCPA): the brand is the sender of every e-mail."),
    "eu-strict": lazy_gettext(
        "For the European Union (the Dutch ACM, the French CNIL, GDPR): no rewards, nothing kept."
    ),
    "share-only": lazy_gettext(
        "For the United Kingdom (PECR): the server sends nothing; people share a link themselves."
    ),
    "custom": lazy_gettext(
        "Each rule set by hand below, by an admin, with a written justification kept in the history."
    ),
}


def explain_policy(policy: ConsentPolicy) -> PolicyExplanation:
    """The policy in plain sentences, each read off one of its fields."""
    return PolicyExplanation(
        policy.name,
        str(_SUMMARIES.get(policy.name, "")),
        (_sender_fact(policy), _incentives_fact(policy), _retention_fact(policy), *_channel_facts(policy)),
    )


def built_in_explanations() -> dict[str, PolicyExplanation]:
    """Every built-in policy explained, and the custom one as what it lets an admin set."""
    explained = {name: explain_policy(BUILT_IN[name]) for name in BUILT_IN}
    explained["custom"] = PolicyExplanation(
        "custom",
        str(_SUMMARIES["custom"]),
        (_("Only an admin may choose it; the only way to text a friend without their prior consent."),),
    )
    return explained


def _sender_fact(policy: ConsentPolicy) -> str:
    if policy.preview_required:
        return _("The sender sees the whole message before it goes, and confirms it; only what was previewed is sent.")
    return _("The sender types their friends' contacts and sends; no preview step is required.")


def _incentives_fact(policy: ConsentPolicy) -> str:
    if policy.incentives:
        return _("Incentives are allowed: coupons, rewards and contests (disclosed in the message).")
    return _("No incentives: no coupons, no rewards, no contests.")


def _retention_fact(policy: ConsentPolicy) -> str:
    if policy.retention is Retention.NOTHING:
        return _("A friend's contact is never stored.")
    if policy.retention is Retention.PURGE_AFTER_SEND:
        return _("A friend's contact is erased once the message has gone; only a hash is kept, to honour opt-outs.")
    return ngettext(
        "A friend's contact is kept until the message is sent, then %(num)s day more.",
        "A friend's contact is kept until the message is sent, then %(num)s days more.",
        policy.retention_days,
    )


def _channel_facts(policy: ConsentPolicy) -> list[str]:
    facts = []
    for channel in registered():
        noun = str(PLURAL_NOUNS.get(channel.message_noun, channel.message_noun))
        rule = policy.rule(channel.name)
        if rule is ChannelRule.NEVER:
            facts.append(
                _(
                    "%(messages)s: never sent by the server; the sender shares a link from their own device.",
                    messages=noun,
                )
            )
            continue
        if rule is ChannelRule.ALLOWED:
            fact = _("%(messages)s: sent by the server to any friend the sender names.", messages=noun)
        else:
            fact = _(
                "%(messages)s: sent by the server only to a friend whose own consent is on record; "
                "for the others the sender shares a link.",
                messages=noun,
            )
        window = channel.quiet_window(policy)
        if window is not None:
            fact += " " + _(
                "Only between %(start)s and %(end)s in the friend's own time.",
                start=window.start.strftime("%H:%M"),
                end=window.end.strftime("%H:%M"),
            )
        facts.append(fact)
    return facts
