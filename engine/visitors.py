"""Who opens a link: a person, or a machine fetching it ahead of one (a prefetch).

A tracked link posted in a chat is fetched at once by the app's link-preview service, and a
link in an e-mail is often fetched by the recipient's mail security scanner before anyone
reads the mail. Neither is the friend: counting them would make clicks (and landing views)
out of nobody, and setting the referral cookie for them would be setting it on a machine's
behalf. They still get the redirect and the page (a preview needs its title and image), but
they are counted apart, as prefetches.

The rules, one line each with the reason, are the single place that decides. They match
names that machines give themselves; a person's browser, in-app browsers included
(Instagram's, Facebook's `FBAN`/`FBAV`, LinkedIn's `LinkedInApp`, Telegram's), never carries
them. tests/fixtures/user_agents.txt holds real user agents of both kinds, which the unit
tests check against these rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regular expression, matched case-insensitively anywhere in the user agent
    reason: str


RULES: tuple[Rule, ...] = (
    # -- link previews of chat and social apps: they fetch the page for its Open Graph tags.
    Rule(r"^WhatsApp/", "WhatsApp's link preview (its in-app links open in the phone's browser)"),
    Rule(r"facebookexternalhit|Facebot", "Facebook's and Messenger's link preview (also part of iMessage's)"),
    Rule(r"Twitterbot", "X (Twitter) card preview (also part of iMessage's)"),
    Rule(r"Slackbot|Slack-ImgProxy", "Slack's link expansion"),
    Rule(r"TelegramBot", "Telegram's link preview (its in-app browser says Telegram, not TelegramBot)"),
    Rule(r"LinkedInBot", "LinkedIn's link preview (its in-app browser says LinkedInApp)"),
    Rule(r"Discordbot", "Discord's link embed"),
    Rule(r"SkypeUriPreview", "Skype's and Microsoft Teams' link preview"),
    Rule(r"MicrosoftPreview|Teams/\S+ Preview", "Microsoft Teams' and Outlook's link preview"),
    Rule(r"Applebot", "Apple's crawler, which also fetches iMessage and Spotlight previews"),
    Rule(r"Pinterest(?:bot)?/", "Pinterest's pin preview"),
    Rule(r"redditbot", "Reddit's link preview"),
    Rule(r"Snap URL Preview", "Snapchat's link preview"),
    Rule(r"vkShare|Viber/|Line/\d.* Preview", "VK's, Viber's and LINE's link previews"),
    Rule(r"Embedly|Iframely|Mastodon/|Bluesky Cardyb", "embed services and the fediverse's link cards"),
    # -- search engines and other crawlers.
    Rule(
        r"Googlebot|Google-InspectionTool|GoogleOther|AdsBot-Google|Mediapartners-Google|APIs-Google",
        "Google's crawlers",
    ),
    Rule(r"FeedFetcher-Google|Google-Read-Aloud|Google-Site-Verification", "Google's fetchers"),
    Rule(r"bingbot|BingPreview|adidxbot", "Bing's crawler and preview"),
    Rule(
        r"YandexBot|Baiduspider|DuckDuckBot|Yahoo! Slurp|Sogou|Exabot|SeznamBot|PetalBot|Bytespider",
        "search engines' crawlers",
    ),
    Rule(r"AhrefsBot|SemrushBot|MJ12bot|DotBot|BLEXBot|DataForSeoBot|rogerbot", "SEO crawlers"),
    Rule(
        r"GPTBot|ChatGPT-User|ClaudeBot|Claude-User|PerplexityBot|CCBot|anthropic-ai|cohere-ai",
        "AI crawlers and the fetches of AI assistants",
    ),
    # -- mail security scanners: they open every link of an incoming mail to check where it leads.
    Rule(
        r"Barracuda|Mimecast|Proofpoint|ppops-|Symantec|Trend ?Micro|Sophos|Forcepoint|Cisco ?Secure|IronPort",
        "mail security gateways' link scanners",
    ),
    Rule(
        r"Microsoft Office Existence Discovery|ms-office|Microsoft Office/\S+ \(",
        "Office apps checking a link before a person's browser opens it",
    ),
    Rule(r"HeadlessChrome|PhantomJS|Headless", "headless browsers, which scanners drive; no person uses one"),
    # -- what names itself a robot: the `(compatible; Name/1.0; +https://...)` convention, and
    # the words. `bot` only as a word of its own or before a version (`SomeBot/1.0`), so that a
    # phone called Cubot (`CUBOT_P30 Build/...`) is a person.
    Rule(r"\+https?://|\(\s*https?://", "a crawler's contact page in its user agent (the robots' convention)"),
    Rule(r"\bbot\b|bot/\d|crawler|spider|\bscanner\b|checklink|link ?check|preview", "names itself a bot or a preview"),
    Rule(
        r"(?:^|\s)(?:curl|Wget|libwww-perl|Go-http-client|Java|Apache-HttpClient|axios|node-fetch)/",
        "command-line tools and HTTP libraries: a script, not a browser",
    ),
)

_MATCHER = re.compile("|".join(f"(?P<r{i}>{rule.pattern})" for i, rule in enumerate(RULES)), re.IGNORECASE)

# HEAD asks whether a link works without reading the page: browsers never send it for a link a
# person opens, link checkers and mail scanners do.
PREFETCH_METHODS = frozenset({"HEAD"})
NO_USER_AGENT = "no user agent: every browser sends one, some scanners send none"


def prefetch_reason(user_agent: str | None, method: str = "GET") -> str | None:
    """Why this request is a machine fetching the link ahead of a person, or None: a person."""
    if method.upper() in PREFETCH_METHODS:
        return "a HEAD request (link checkers and scanners ask whether a link works without opening it)"
    if not user_agent or not user_agent.strip():
        return NO_USER_AGENT
    found = _MATCHER.search(user_agent)
    if found is None:
        return None
    # lastgroup is the named group that matched: which rule.
    return RULES[int(str(found.lastgroup)[1:])].reason


def is_prefetch(user_agent: str | None, method: str = "GET") -> bool:
    return prefetch_reason(user_agent, method) is not None
