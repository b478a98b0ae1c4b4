"""A local HTTP receiver for webhooks (e.g. Twilio status callbacks): it answers every
request with 200 and an empty body, and keeps what it received."""

from __future__ import annotations

from tests.stubs.base import WAIT_TIMEOUT, Request, Response, StubServer


class CallbackReceiver(StubServer):
    def handle(self, request: Request) -> Response:
        return Response(200)

    @property
    def received(self) -> list[Request]:
        return [exchange.request for exchange in self.exchanges if exchange.processed]

    def wait_for_requests(self, count: int, timeout: float = WAIT_TIMEOUT) -> list[Request]:
        self.wait_for(lambda: len(self.received) >= count, timeout, f"{count} request(s)")
        return self.received

    def url_for(self, request: Request) -> str:
        """The full URL the request was sent to, as a webhook signature covers it."""
        return f"{self.url}{request.target}"
