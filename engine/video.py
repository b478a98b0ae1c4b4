"""A landing page's hero video: what a marketer may set, and what the page then shows and allows.

Two kinds: a file the brand hosts itself (an https `.mp4` or `.webm` URL on a host the campaign
lists in `media_hosts`), or a privacy-enhanced player of YouTube (youtube-nocookie.com) or Vimeo
(`dnt=1`). A provider's page URL is read down to the video's id, and the player's URL is built
from that id alone: nothing a marketer types reaches an `src` but an id we checked, or a file on
a host they listed. The page's Content-Security-Policy is widened by exactly what the video needs
(`csp_sources`), on that campaign's landing page only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import SplitResult, parse_qs, urlsplit

from markupsafe import Markup

YOUTUBE_PLAYER_ORIGIN = "https://www.youtube-nocookie.com"
VIMEO_PLAYER_ORIGIN = "https://player.vimeo.com"
VIDEO_FILE_SUFFIXES = (".mp4", ".webm")
CAPTIONS_SUFFIXES = (".vtt",)
MAX_URL = 500
MAX_CAPTION = 200
MAX_MEDIA_HOSTS = 10

# Where {{ video }} puts the video in a campaign's own landing template: the page swaps this
# marker for the player (or for nothing, without a video). An empty element, so that a
# template checked or previewed without a video shows nothing there.
VIDEO_PLACEHOLDER = Markup('<div data-fluister-video=""></div>')

# `reveal_form`: when the send-to-friend form shows (engine.services.campaigns).
REVEAL_ALWAYS = ""
REVEAL_AFTER_VIDEO = "after-video"
# The form waits until the visitor completes a step (a quiz, a game) of the campaign's own landing
# template: the element carrying STEP_DONE_ATTRIBUTE (a button or a link) reveals it. No video needed.
REVEAL_AFTER_STEP = "after-step"
REVEAL_CHOICES = (REVEAL_ALWAYS, REVEAL_AFTER_VIDEO, REVEAL_AFTER_STEP)
STEP_DONE_ATTRIBUTE = "data-fluister-step-done"
# The keys of a campaign's `landing_video` setting.
VIDEO_SETTINGS = ("url", "poster", "caption", "captions", "reveal_form")

_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_VIMEO_ID = re.compile(r"[0-9]{1,12}")
_HOST = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_YOUTUBE_HOSTS = frozenset(
    {"youtube.com", "www.youtube.com", "m.youtube.com", "youtube-nocookie.com", "www.youtube-nocookie.com"}
)
_VIMEO_HOSTS = frozenset({"vimeo.com", "www.vimeo.com", "player.vimeo.com"})


class VideoKind(StrEnum):
    FILE = "file"
    YOUTUBE = "youtube"
    VIMEO = "vimeo"


class VideoProblem(ValueError):
    """A video setting that cannot be saved; the message says why, for the marketer."""


@dataclass(frozen=True)
class LandingVideo:
    """The video a landing page shows, with everything its player and the page's CSP need."""

    kind: VideoKind
    # The file's URL, or the provider's video id.
    source: str
    poster: str = ""
    caption: str = ""
    captions: str = ""

    @property
    def embedded(self) -> bool:
        return self.kind is not VideoKind.FILE

    @property
    def player_url(self) -> str:
        """What the iframe loads once the visitor pressed play (autoplay: they asked for it)."""
        if self.kind is VideoKind.YOUTUBE:
            return f"{YOUTUBE_PLAYER_ORIGIN}/embed/{self.source}?autoplay=1&enablejsapi=1&rel=0"
        if self.kind is VideoKind.VIMEO:
            return f"{VIMEO_PLAYER_ORIGIN}/video/{self.source}?dnt=1&autoplay=1"
        return self.source

    @property
    def watch_url(self) -> str:
        """The video on the provider's own site: where the play link goes without JavaScript."""
        if self.kind is VideoKind.YOUTUBE:
            return f"https://www.youtube.com/watch?v={self.source}"
        if self.kind is VideoKind.VIMEO:
            return f"https://vimeo.com/{self.source}"
        return self.source

    def csp_sources(self) -> dict[str, tuple[str, ...]]:
        """What the landing page's Content-Security-Policy must add for this video (img-src
        allows every https poster already)."""
        if self.kind is VideoKind.YOUTUBE:
            return {"frame-src": (YOUTUBE_PLAYER_ORIGIN,)}
        if self.kind is VideoKind.VIMEO:
            return {"frame-src": (VIMEO_PLAYER_ORIGIN,)}
        origins = tuple(dict.fromkeys(_origin(url) for url in (self.source, self.captions) if url))
        return {"media-src": origins}


def landing_video(settings: Mapping[str, str], media_hosts: tuple[str, ...]) -> LandingVideo | None:
    """The video a campaign's stored settings describe (None: no video, or settings that no
    longer pass, e.g. a host since removed from `media_hosts`)."""
    if not settings.get("url"):
        return None
    try:
        return checked_video(settings, media_hosts)
    except VideoProblem:
        return None


def checked_video(settings: Mapping[str, str], media_hosts: tuple[str, ...]) -> LandingVideo:
    """The video, every setting checked; raises VideoProblem naming the first bad one
    (`video_problems` gives each, by setting)."""
    problems = video_problems(settings, media_hosts)
    if problems:
        raise VideoProblem(next(iter(problems.values())))
    url = settings["url"].strip()
    kind, source = _read_video_url(url, media_hosts)
    return LandingVideo(
        kind=kind,
        source=source,
        poster=settings.get("poster", "").strip(),
        caption=settings.get("caption", "").strip(),
        captions=settings.get("captions", "").strip(),
    )


def video_problems(settings: Mapping[str, str], media_hosts: tuple[str, ...]) -> dict[str, str]:
    """Every problem of the video settings, by setting (`url`, `poster`, `caption`, `captions`,
    `reveal_form`); empty when they may be saved. No URL: no video, and nothing else is needed."""
    problems: dict[str, str] = {}
    url = str(settings.get("url", "")).strip()
    poster = str(settings.get("poster", "")).strip()
    captions = str(settings.get("captions", "")).strip()
    caption = str(settings.get("caption", "")).strip()
    if str(settings.get("reveal_form", "")) not in REVEAL_CHOICES:
        problems["reveal_form"] = f"choose one of: always, {REVEAL_AFTER_VIDEO}, {REVEAL_AFTER_STEP}"
    if not url:
        if poster or captions:
            problems["url"] = "a poster or captions need a video: set its URL, or clear them"
        if settings.get("reveal_form") == REVEAL_AFTER_VIDEO:
            problems["reveal_form"] = "the form can only wait for a video: set its URL first"
        return problems
    try:
        _read_video_url(url, media_hosts)
    except VideoProblem as refused:
        problems["url"] = str(refused)
    if poster and (wrong := _hosted_file_problem(poster, media_hosts, None, "the poster")):
        problems["poster"] = wrong
    if captions and (wrong := _hosted_file_problem(captions, media_hosts, CAPTIONS_SUFFIXES, "the captions")):
        problems["captions"] = wrong
    if not caption:
        problems["caption"] = "a video needs a title, read out to visitors who cannot see it"
    elif len(caption) > MAX_CAPTION or any(ord(c) < 32 for c in caption):
        problems["caption"] = f"one line of at most {MAX_CAPTION} characters"
    return problems


def media_hosts_problem(hosts: tuple[str, ...]) -> str | None:
    if len(hosts) > MAX_MEDIA_HOSTS:
        return f"at most {MAX_MEDIA_HOSTS} hosts"
    for host in hosts:
        if not _HOST.fullmatch(host):
            return f"{host[:80]!r} is not a host name (like media.example.com, without https:// or a path)"
    return None


def normalised_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(host.strip().lower().rstrip(".") for host in hosts if host.strip()))


def _read_video_url(url: str, media_hosts: tuple[str, ...]) -> tuple[VideoKind, str]:
    parts = _https_parts(url, "the video")
    host = (parts.hostname or "").lower()
    if host in _YOUTUBE_HOSTS or host == "youtu.be":
        return VideoKind.YOUTUBE, _youtube_id(host, parts.path, parts.query)
    if host in _VIMEO_HOSTS:
        segments = [s for s in parts.path.split("/") if s]
        video_id = segments[-1] if segments else ""
        if not _VIMEO_ID.fullmatch(video_id):
            raise VideoProblem("a Vimeo address ends with the video's number, like https://vimeo.com/76979871")
        return VideoKind.VIMEO, video_id
    problem = _hosted_file_problem(url, media_hosts, VIDEO_FILE_SUFFIXES, "the video")
    if problem:
        raise VideoProblem(problem)
    return VideoKind.FILE, url


def _youtube_id(host: str, path: str, query: str) -> str:
    if host == "youtu.be":
        candidate = path.strip("/")
    elif path in ("/watch", "/watch/"):
        candidate = (parse_qs(query).get("v") or [""])[0]
    else:
        segments = [s for s in path.split("/") if s]
        kinds = ("embed", "shorts", "live", "v")
        candidate = segments[1] if len(segments) == 2 and segments[0] in kinds else ""
    if not _YOUTUBE_ID.fullmatch(candidate):
        raise VideoProblem(
            "a YouTube address names its video, like https://www.youtube.com/watch?v=dQw4w9WgXcQ or https://youtu.be/dQw4w9WgXcQ"
        )
    return candidate


def _https_parts(url: str, what: str) -> SplitResult:
    if len(url) > MAX_URL:
        raise VideoProblem(f"{what}: at most {MAX_URL} characters")
    if any(ord(c) <= 32 or c in "<>\"'\\" for c in url):
        raise VideoProblem(f"{what}: an address without spaces, quotes or angle brackets")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise VideoProblem(f"{what}: not a web address") from None
    if parts.scheme.lower() != "https" or not parts.hostname or parts.username or parts.password:
        raise VideoProblem(f"{what}: an https:// address is needed (visitors' browsers refuse anything else)")
    return parts


def _hosted_file_problem(
    url: str, media_hosts: tuple[str, ...], suffixes: tuple[str, ...] | None, what: str
) -> str | None:
    try:
        parts = _https_parts(url, what)
    except VideoProblem as problem:
        return str(problem)
    host = (parts.hostname or "").lower()
    if host not in media_hosts:
        listed = ", ".join(media_hosts) or "none yet"
        return f"{what}: {host} is not one of the campaign's media hosts ({listed}); add it there first"
    if suffixes and not parts.path.lower().endswith(suffixes):
        return f"{what}: a file ending in {' or '.join(suffixes)}"
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
