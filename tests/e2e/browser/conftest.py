"""Browser fixtures: Debian's Chromium driven by Playwright, against the app as `make run` serves it.

The live server is the embedded default (SQLite, the in-process queue and the outbox transport),
so `/dev/outbox` shows what the app sent. Playwright's own browser builds are never downloaded:
the browser is the system's `chromium` (`CHROMIUM` names another one). Without it these tests
are skipped, except under REQUIRE_SERVICES=1 (CI), where a missing browser fails the run.

Every page a test visits is kept as a screenshot under `test-artifacts/screenshots/<test>/`, and
checked with axe-core (tests/e2e/browser/accessibility.py): a test that showed a page breaking a
WCAG 2.0/2.1 A or AA rule fails, listing each violation with its page and step.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from config import Settings
from engine import PROJECT_ROOT, create_app
from engine.queue import InProcessJobQueue
from engine.services.campaigns import seed_demo_campaign
from tests.conftest import REQUIRE_SERVICES
from tests.e2e.browser.accessibility import Violation, audit_page, report
from tests.e2e.live import LiveServer
from tests.helpers import runtime_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Download, Error, Page

SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
# How long Playwright waits for an element or a navigation: generous for a loaded 2-core machine.
TIMEOUT_MS = 15_000


def _missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(what)


# The browser says what a person's Chrome says: a headless Chromium names itself HeadlessChrome,
# which link scanners drive and engine.visitors counts as a prefetch, not a person's click.
PERSONS_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
BROWSER_ARGS = ["--no-sandbox", f"--user-agent={PERSONS_USER_AGENT}"]


def chromium_executable() -> str | None:
    """The browser to drive: `CHROMIUM` when set, else `chromium` on the PATH, else Debian's /usr/bin/chromium."""
    wanted = os.environ.get("CHROMIUM")
    candidates = [wanted] if wanted else [shutil.which("chromium"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for these tests; each test gets its own context (cookies, storage).
    Closed when they are over: Playwright's sync API keeps an asyncio loop running in this thread,
    which would be in the way of any later test that starts one of its own."""
    executable = chromium_executable()
    if executable is None:
        wanted = os.environ.get("CHROMIUM")
        _missing(
            f"CHROMIUM={wanted} is not a program" if wanted else "Chromium is not installed (apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _missing(f"Playwright is not installed: {error}")
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to start as root with its sandbox, and CI runs as root.
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """The embedded default's database: a fresh SQLite file (PostgreSQL runs under the other e2e tests)."""
    path = tmp_path / "fluister.db"
    path.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class LiveApp(LiveServer):
    """The live server, and the app it serves (whose url_map says which pages exist)."""

    app: Flask


class _AppSlot:
    """A WSGI app filled in after the server is bound: the app's settings need the server's port."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture
def live(database_url: str, settings_for: Callable[..., Settings]) -> Iterator[LiveApp]:
    """The app on a real HTTP server, as `make run` serves it (the demo campaign seeded): the in-process
    worker delivers to the outbox, and links in messages point at this server. The form may be sent at
    once (MIN_FORM_SECONDS=0): a browser fills it in faster than a person. (As tests/e2e/conftest.py's
    `serve`, keeping the app.)"""
    slot = _AppSlot()
    server = make_server("127.0.0.1", 0, slot, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    settings = settings_for(database_url, None, public_base_url=url, inprocess_worker=True, min_form_seconds=0)
    slot.app = create_app(settings)
    runtime = runtime_of(slot.app)
    seed_demo_campaign(runtime.db)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield LiveApp(url, settings, runtime, slot.app)
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()
    if isinstance(runtime.queue, InProcessJobQueue):
        runtime.queue.stop()  # its worker thread would otherwise go on sweeping the database
    runtime.db.dispose()


# The tabs the running test opened: their accessibility violations fail it (pytest_runtest_call).
_TABS: list[Tab] = []


class Tab:
    """A browser tab of its own context, which keeps a screenshot of each page it is shown, and
    every error the page logged (CSP violations are logged as console errors) or threw, and
    every accessibility violation (axe-core) of each page it kept a screenshot of. A tab whose
    browser runs no JavaScript (`javascript=False`) cannot run axe-core: its pages are not checked
    (the same pages are, where a test shows them with JavaScript)."""

    def __init__(self, page: Page, server: LiveServer, folder: Path, *, javascript: bool = True) -> None:
        self.page = page
        self.server = server
        self.folder = folder
        self.javascript = javascript
        self.errors: list[str] = []
        self.violations: list[Violation] = []
        self._shots = 0
        _TABS.append(self)
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error on {self.page.url}: {message.text} ({message.location.get('url')})")

    def _page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught {error.name} on {self.page.url}: {error.message}")

    def open(self, path_or_url: str, step: str) -> None:
        """Go to a path of the live server (or a full URL), check it is not an error page, and keep a screenshot."""
        url = path_or_url if "://" in path_or_url else self.server.url + path_or_url
        response = self.page.goto(url)
        assert response is not None and response.ok, f"{url}: {response and response.status}"
        self.shot(step)

    def shot(self, step: str) -> Path:
        """Keep a screenshot of the whole page as `NN-step.png`, numbered in the order taken, and
        check the page as it is with axe-core."""
        self._shots += 1
        path = self.folder / f"{self._shots:02d}-{_safe(step)}.png"
        self.page.screenshot(path=path, full_page=True)
        if self.javascript:
            self.violations += audit_page(self.page, step, self.server.url)
        return path

    def keep(self, download: Download, name: str) -> Path:
        """Keep a downloaded file beside the screenshots."""
        path = self.folder / _safe(name)
        download.save_as(path)
        return path

    def assert_no_errors(self) -> None:
        """No console error (a CSP violation included) and no uncaught exception on any page shown."""
        assert self.errors == []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _TABS.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that passed fails when a page it showed broke an accessibility rule; one that
    failed anyway has the violations in its report too."""
    try:
        result = yield
    except BaseException:
        violations = [v for tab in _TABS for v in tab.violations]
        if violations:
            item.add_report_section("call", "accessibility", report(violations))
        raise
    violations = [v for tab in _TABS for v in tab.violations]
    if violations:
        pytest.fail(report(violations), pytrace=False)
    return result


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-")


@pytest.fixture
def tab(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh browser context (no cookies) with one tab on the live server; its screenshots go to
    test-artifacts/screenshots/<test>/, emptied first."""
    folder = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield Tab(page, live, folder)
    context.close()


@pytest.fixture
def tab_without_javascript(browser: Browser, live: LiveApp, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """As `tab`, on a phone (390 x 844), in a browser that runs no script at all."""
    folder = SCREENSHOTS / _safe(request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(java_script_enabled=False, locale="en-US", viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    yield Tab(context.new_page(), live, folder, javascript=False)
    context.close()
