"""The send-to-friend form of a first landing view, rendered once per shape and kept per process.

A first view's form is the same for every visitor of a campaign in a language (no value typed, no
error shown) but for four values: the CSRF token, the render stamp, and the signed referral and
variant the visitor carries. Rendering it (WTForms' widgets, a few dozen translated strings,
escaping) was about a quarter of a landing view's CPU. So the first render of each shape is kept
with those four values cut out, and later visitors get it with theirs put in: the same bytes a
render would give them (tests/integration/test_landing_form_cache.py compares the two).

What makes a shape is everything the form's template reads besides those values: the campaign
(its slug, channels, contact choices, most friends a form), the language and address form, what
the form waits for (a video, a step), the proof-of-work challenge, the rows, and whether the
visitor carries a referral and a variant at all. A form with an error or a typed value, and the
embedded form (whose own stamp is rendered inside it), are rendered every time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping

from markupsafe import Markup, escape

# Stand-ins for a visitor's values in a kept form: characters of Unicode's private use area,
# which no translation or campaign setting that the form prints contains.
_HOLE = "\ue000{}\ue001"


class FormHtmlCache:
    """Kept forms by shape, the least recently used dropped beyond `size` (query strings and
    languages make shapes; a bounded cache keeps a stranger's made-up shapes from growing it)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._kept: OrderedDict[Hashable, str] = OrderedDict()

    def form(self, shape: Hashable, values: Mapping[str, str], render: Callable[[], str]) -> Markup:
        """The form of `shape` with the visitor's `values` (name -> value) in it: kept, or
        rendered now by `render` (with those values) and kept with them cut out. An empty value
        has nothing to cut out (whether each value is there is part of the shape). A value that
        does not appear exactly once in the render (so cannot be cut out without doubt) leaves
        that shape rendered every time."""
        values = {name: value for name, value in values.items() if value}
        shape = (shape, tuple(sorted(values)))  # which values the visitor has is part of the shape
        kept = self._kept.get(shape)
        if kept is not None:
            self._kept.move_to_end(shape)
            for name, value in values.items():
                kept = kept.replace(_HOLE.format(name), str(escape(value)))
            return Markup(kept)  # noqa: S704 (our template's render, with escaped values put in)
        html = render()
        template = html
        for name, value in values.items():
            shown = str(escape(value))
            if template.count(shown) != 1:
                return Markup(html)  # noqa: S704 (our template's render)
            template = template.replace(shown, _HOLE.format(name))
        self._kept[shape] = template
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return Markup(html)  # noqa: S704 (our template's render)

    def __len__(self) -> int:
        return len(self._kept)
