"""A campaign's images, checked by decoding them and stored re-encoded: its share card (the
picture a link preview shows) and its logo (at the top of the built-in e-mail).

What a marketer uploads is read by what it is, never by its name: PNG, JPEG or WebP, decoded
whole (a truncated or corrupt file is refused), its size read from the header before any
pixel is (a small file that unpacks to billions of pixels is refused unread). SVG is refused
with its reason: it can carry scripts, and link previews do not show it anyway. The stored
copy is a fresh encoding of the pixels only, turned upright first: nothing of the file's
metadata (EXIF, a phone's GPS position, the camera, comments, text chunks) goes with it.
A logo has limits of its own (smaller: it is shown about 200 pixels wide), and a WebP logo is
stored as PNG: e-mail clients (Outlook's among them) do not all show WebP.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import gettext
from PIL import Image, ImageOps, UnidentifiedImageError

# What a marketer may upload; the request is refused (413) before it is read when larger.
MAX_CARD_IMAGE_BYTES = 5 * 1024 * 1024
# Link previews show 1200 x 630; this leaves room for a sharper image, not for a poster.
MAX_CARD_SIDE = 8192
MAX_CARD_PIXELS = 40_000_000
# Below this, networks show no large card (or none at all).
MIN_CARD_SIDE = 200

# A logo: shown about 200 pixels wide (twice that on a sharp screen); larger is only weight.
MAX_LOGO_BYTES = 1024 * 1024
MAX_LOGO_SIDE = 2000
MAX_LOGO_PIXELS = 2000 * 1000
MIN_LOGO_SIDE = 16

# Decoded format → (content type, extension). Only these are read at all.
ACCEPTED = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
EXTENSIONS = {extension: content_type for content_type, extension in ACCEPTED.values()}


class CardImageRefused(ValueError):
    """The upload is not an image this accepts; the message says why, to the marketer."""


@dataclass(frozen=True)
class CardImage:
    """A checked image, re-encoded: what is stored and served."""

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class _Rules:
    """What one kind of image may be, and how a refusal says so."""

    max_bytes: int
    max_side: int
    max_pixels: int
    min_side: int
    too_large: Callable[[], str]
    too_many_pixels: Callable[[], str]
    too_big: Callable[[int, int], str]
    too_small: Callable[[int, int], str]
    # Formats stored as another (decoded format → stored format).
    stored_as: dict[str, str]


def checked_card_image(data: bytes) -> CardImage:
    """The upload decoded, checked and re-encoded without its metadata. Raises CardImageRefused."""
    return _checked(data, _CARD)


def checked_logo_image(data: bytes) -> CardImage:
    """A logo upload decoded, checked and re-encoded without its metadata (WebP as PNG).
    Raises CardImageRefused."""
    return _checked(data, _LOGO)


def _checked(data: bytes, rules: _Rules) -> CardImage:
    if not data:
        raise CardImageRefused(gettext("The file is empty."))
    if len(data) > rules.max_bytes:
        raise CardImageRefused(rules.too_large())
    image = _opened(data, rules)
    width, height = image.width, image.height
    if width > rules.max_side or height > rules.max_side or width * height > rules.max_pixels:
        raise CardImageRefused(rules.too_big(width, height))
    if width < rules.min_side or height < rules.min_side:
        raise CardImageRefused(rules.too_small(width, height))
    image = _decoded(image)
    image_format = str(image.format or "")
    return _reencoded(image, rules.stored_as.get(image_format, image_format))


def _too_large() -> str:
    return gettext("The image is larger than %(mib)s MiB.", mib=MAX_CARD_IMAGE_BYTES // (1024 * 1024))


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head


def _opened(data: bytes, rules: _Rules) -> Image.Image:
    """The image's header read (no pixels yet), if it is one of the accepted formats."""
    try:
        with warnings.catch_warnings():
            # Pillow warns of a large image and raises past twice its limit; ours is smaller.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise CardImageRefused(rules.too_many_pixels()) from None
    except (UnidentifiedImageError, OSError):
        if _looks_like_svg(data):
            raise CardImageRefused(
                gettext("SVG is not accepted: an SVG file can carry scripts. Upload a PNG, JPEG or WebP image.")
            ) from None
        raise CardImageRefused(gettext("This is not a PNG, JPEG or WebP image.")) from None


def _too_many_pixels() -> str:
    return gettext(
        "The image has too many pixels: at most %(side)s pixels a side is accepted "
        "(1200 x 630 is what link previews show).",
        side=MAX_CARD_SIDE,
    )


def _card_too_big(width: int, height: int) -> str:
    return gettext(
        "The image is %(width)s x %(height)s pixels: at most %(side)s pixels a side is accepted "
        "(1200 x 630 is what link previews show).",
        width=width,
        height=height,
        side=MAX_CARD_SIDE,
    )


def _card_too_small(width: int, height: int) -> str:
    return gettext(
        "The image is %(width)s x %(height)s pixels: link previews need at least %(side)s pixels a side "
        "(1200 x 630 is best).",
        width=width,
        height=height,
        side=MIN_CARD_SIDE,
    )


def _logo_too_large() -> str:
    return gettext("The logo is larger than %(mib)s MiB.", mib=MAX_LOGO_BYTES // (1024 * 1024))


def _logo_too_many_pixels() -> str:
    return gettext("The logo has too many pixels: at most %(side)s pixels a side is accepted.", side=MAX_LOGO_SIDE)


def _logo_too_big(width: int, height: int) -> str:
    return gettext(
        "The logo is %(width)s x %(height)s pixels: at most %(side)s pixels a side, and %(pixels)s pixels "
        "in all, are accepted (an e-mail shows it about 200 pixels wide).",
        width=width,
        height=height,
        side=MAX_LOGO_SIDE,
        pixels=f"{MAX_LOGO_PIXELS:,}",
    )


def _logo_too_small(width: int, height: int) -> str:
    return gettext(
        "The logo is %(width)s x %(height)s pixels: at least %(side)s pixels a side is needed.",
        width=width,
        height=height,
        side=MIN_LOGO_SIDE,
    )


_CARD = _Rules(
    MAX_CARD_IMAGE_BYTES,
    MAX_CARD_SIDE,
    MAX_CARD_PIXELS,
    MIN_CARD_SIDE,
    _too_large,
    _too_many_pixels,
    _card_too_big,
    _card_too_small,
    {},
)
_LOGO = _Rules(
    MAX_LOGO_BYTES,
    MAX_LOGO_SIDE,
    MAX_LOGO_PIXELS,
    MIN_LOGO_SIDE,
    _logo_too_large,
    _logo_too_many_pixels,
    _logo_too_big,
    _logo_too_small,
    {"WEBP": "PNG"},
)


def _decoded(image: Image.Image) -> Image.Image:
    """Every pixel read (a truncated or corrupt file fails here), turned as its EXIF says."""
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise CardImageRefused(gettext("The image file is damaged or incomplete.")) from None
    upright.format = image.format
    return upright


def _reencoded(image: Image.Image, image_format: str) -> CardImage:
    content_type, extension = ACCEPTED[image_format]
    # Only the pixels go into the new file: no exif=, icc_profile= or pnginfo= is passed on.
    pixels = Image.new(_mode_for(image, image_format), image.size)
    pixels.paste(image.convert(pixels.mode))
    out = io.BytesIO()
    if image_format == "JPEG":
        pixels.save(out, "JPEG", quality=88, optimize=True)
    elif image_format == "WEBP":
        pixels.save(out, "WEBP", quality=88)
    else:
        pixels.save(out, "PNG", optimize=True)
    return CardImage(out.getvalue(), content_type, extension, pixels.width, pixels.height)


def _mode_for(image: Image.Image, image_format: str) -> str:
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if image_format == "JPEG":
        return "RGB"
    return "RGBA" if transparent else "RGB"
