"""A tracked link as a QR code (segno, pure Python): inline in a page, or a file to download.

Error correction "m" (15%): a printed code still scans with a smudge or a fold. Files are
drawn large enough to print: the PNG at 10 pixels a module (a link of ~100 characters gives
about 500 x 500 pixels, 4 cm at 300 dpi), the SVG scales without loss.
"""

from __future__ import annotations

import io

import segno
from markupsafe import Markup

ERROR_CORRECTION = "m"
PAGE_SCALE = 4
PNG_SCALE = 10
FILE_SCALE = 10
BORDER = 4  # the quiet zone the standard asks for, in modules


def qr_code(link: str) -> segno.QRCode:
    return segno.make(link, error=ERROR_CORRECTION, micro=False)


def inline_svg(link: str, title: str) -> Markup:
    """The code as an <svg> element to put in a page, named `title` for screen readers."""
    # segno writes the SVG itself (numbers and fixed markup only; the title is escaped by segno):
    # safe to put in the page as is.
    return Markup(qr_code(link).svg_inline(scale=PAGE_SCALE, border=BORDER, title=title))  # noqa: S704


def svg_file(link: str) -> bytes:
    out = io.BytesIO()
    qr_code(link).save(out, kind="svg", scale=FILE_SCALE, border=BORDER, xmldecl=True)
    return out.getvalue()


def png_file(link: str) -> bytes:
    out = io.BytesIO()
    qr_code(link).save(out, kind="png", scale=PNG_SCALE, border=BORDER)
    return out.getvalue()


def png_side(link: str) -> int:
    """The PNG's width and height in pixels."""
    width, _ = qr_code(link).symbol_size(scale=PNG_SCALE, border=BORDER)
    return int(width)
