"""axe-core over the pages the browser tests show: every state a `Tab` keeps a screenshot of is
checked against the WCAG 2.0 and 2.1 rules of levels A and AA, and a test that showed a page
breaking one fails, listing each violation with the page and the step it was found at.

axe-core (the copy axe-playwright-python ships, axe.min.js) is evaluated into the page through
the DevTools protocol, which the page's Content-Security-Policy does not govern: no `unsafe-eval`
or script host has to be allowed for the test's sake, and the policy tested is the one served.

What is checked is what is ours. On the app's own pages: the page, and the frames of the app's
own origin in it (the sandboxed frames that show a message's HTML are an email, not a page, and
a video provider's player is theirs). On a brand's page that embeds us: never their page, only
what our embed.js puts in it (`div.fluister`: the button and its dialog, or the inline frame)
and the frames it loads from us."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Page

# WCAG 2.0 and 2.1, levels A and AA: axe-core's "best-practice" rules (a <main> on every page,
# one <h1>…) are advice, not the standard the pages are held to.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_OPTIONS = {
    "runOnly": {"type": "tag", "values": WCAG_TAGS},
    "resultTypes": ["violations"],
    # Each frame of ours is checked on its own (audit_page): axe need not talk to frames.
    "iframes": False,
}
# What embed.js puts into a brand's page: everything of ours is inside these.
EMBED_PLACES = "div.fluister"


@dataclass(frozen=True)
class Violation:
    """One element breaking one rule, on one page, at one step of a test."""

    rule: str
    impact: str
    target: str
    url: str
    step: str
    help: str

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}) at {self.target} on {self.url}, step {self.step!r}: {self.help}"


@cache
def axe_source() -> str:
    """axe-core itself, as axe-playwright-python bundles it (a test dependency, imported late:
    without it the browser tests are skipped like without Playwright)."""
    from axe_playwright_python.base import AXE_SCRIPT

    return AXE_SCRIPT


def audit_page(page: Page, step: str, own_origin: str) -> list[Violation]:
    """Every WCAG A/AA violation in what is ours of the page as it is now."""
    found: list[Violation] = []
    ours_on_top = _origin(page.main_frame.url) == own_origin
    for frame in page.frames:
        if frame == page.main_frame:
            if ours_on_top:
                found += _audit_frame(frame, step, None)
            elif frame.locator(EMBED_PLACES).count():
                found += _audit_frame(frame, step, {"include": [[EMBED_PLACES]]})
        elif _origin(frame.url) == own_origin:
            found += _audit_frame(frame, step, None)
    return found


def _audit_frame(frame: Frame, step: str, context: dict[str, Any] | None) -> list[Violation]:
    if not frame.evaluate("typeof window.axe === 'object'"):
        frame.evaluate(axe_source())
    results = frame.evaluate("([context, options]) => axe.run(context || document, options)", [context, RUN_OPTIONS])
    return [
        Violation(
            rule=violation["id"],
            impact=violation.get("impact") or "",
            target=" ".join(_selector(part) for part in node["target"]),
            url=frame.url,
            step=step,
            help=violation["help"],
        )
        for violation in results["violations"]
        for node in violation["nodes"]
    ]


def _selector(part: str | list[str]) -> str:
    """axe names an element in a shadow root as a list of selectors, one per root."""
    return part if isinstance(part, str) else " >>> ".join(part)


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}" if rest else ""


def report(violations: list[Violation]) -> str:
    """The violations, one a line, grouped under the rules they break."""
    rules = sorted({v.rule for v in violations})
    lines = [f"{len(violations)} accessibility violation(s) (axe-core, WCAG 2.0/2.1 A and AA):"]
    for rule in rules:
        of_rule = [v for v in violations if v.rule == rule]
        lines.append(f"- {rule} ({of_rule[0].impact}): {of_rule[0].help}")
        lines += [f"    {v.target}  on {v.url}  at step {v.step!r}" for v in of_rule]
    return "\n".join(lines)
