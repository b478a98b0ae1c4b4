"""A live server for end-to-end tests, and browsers (requests sessions) that talk to it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from config import Settings
from engine import PROJECT_ROOT
from engine.runtime import Runtime
from tests.helpers import forward_form, settings_environment, wait_until

HTTP_TIMEOUT = 10
WORKER_TIMEOUT = 120


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    runtime: Runtime

    def outbox(self) -> list[dict[str, Any]]:
        """The development outbox, as `/dev/outbox.json` serves it (newest first)."""
        response = requests.get(f"{self.url}/dev/outbox.json", params={"limit": 1000}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_outbox(self, expected: int) -> list[dict[str, Any]]:
        """Poll the outbox until `expected` messages are in it, then check that there are no more."""

        def arrived() -> list[dict[str, Any]] | None:
            found = self.outbox()
            return found if len(found) >= expected else None

        messages = wait_until(arrived, what=f"{expected} messages in the outbox")
        assert len(messages) == expected, [(m["channel"], m["to"]) for m in messages]
        return messages

    def run_worker(self) -> None:
        """Run `flask --app wsgi worker --burst` as a separate process configured like this server."""
        assert self.settings.redis_url, "a separate worker needs Redis"
        env = settings_environment(self.settings)
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"worker exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"


class Visitor:
    """One browser: its own cookie jar, talking to the live server."""

    def __init__(self, server: LiveServer, language: str = "en") -> None:
        self.server = server
        self.http = requests.Session()
        # A browser says which languages its user reads (the demo campaign speaks Dutch first).
        self.http.headers["Accept-Language"] = language

    def second_tab(self) -> Visitor:
        """The same browser in another tab: its own connection, the same cookies."""
        tab = Visitor(self.server, self.http.headers["Accept-Language"])
        tab.http.cookies.update(self.http.cookies)
        return tab

    def get(self, url: str) -> requests.Response:
        """GET a path or a full URL (such as a link from a message), following redirects."""
        return self.http.get(urljoin(self.server.url, url), timeout=HTTP_TIMEOUT)

    def forward(self, page: requests.Response, *friends: str, sender_name: str, note: str = "") -> requests.Response:
        """Fill in the send-to-friend form on `page` and submit it; the redirect is not followed."""
        return self.post_form(page, forward_form(page.text, sender_name=sender_name, friends=friends, note=note))

    def post_form(self, page: requests.Response, data: dict[str, Any]) -> requests.Response:
        return self.http.post(form_action(page), data=data, allow_redirects=False, timeout=HTTP_TIMEOUT)


def form_action(page: requests.Response) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert match, "no form on the page"
    return urljoin(page.url, match.group(1))


def one(items: Sequence[str]) -> str:
    assert len(items) == 1, items
    return items[0]
