"""A channel is one module: a fourth channel, defined here in the test suite alone, is enabled
by a campaign, allowed by its custom policy, taken by the form's service and sent by dispatch,
without a line of engine code knowing it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine import create_app
from engine.channels import ComposedMessage, MessageChannel, register, unregister
from engine.clock import FixedClock
from engine.contacts import Contact, InvalidContact
from engine.models import Message, MessageStatus
from engine.rendering import TemplateRenderer
from engine.runtime import Runtime
from engine.services.forwarding import ForwardSubmission
from engine.transports import PermanentError, Transports
from engine.transports.memory import MemoryTransport
from tests.helpers import US_CUSTOM_SMS, make_campaign, runtime_of

PAGER_TEMPLATE = "Page from {{ brand_name }}: {{ sender_name }} sent you {{ link }}"


@dataclass(frozen=True)
class Page:
    to: str
    text: str
    reference: str


@dataclass
class PagerNetwork:
    """The pager provider's cloud, faked: it keeps what it was given."""

    pages: list[Page] = field(default_factory=list)

    def page(self, page: Page) -> str:
        if page.to == "0000":
            raise PermanentError("no such pager")
        self.pages.append(page)
        return f"PG{len(self.pages)}"


class PagerChannel(MessageChannel):
    name = "pager"
    label = "page"
    contact_noun = "pager number"
    templates = ("pager.txt",)

    def recognises(self, text: str) -> bool:
        return text.lower().startswith("pager:")

    def parse(self, text: str, region: str) -> Contact:
        number = text.partition(":")[2].strip()
        if not number.isdigit():
            raise InvalidContact("a pager number is digits")
        return Contact(self.name, number)

    def render(self, renderer: TemplateRenderer, message: ComposedMessage) -> Page:
        source = message.campaign.sources.get("pager.txt", PAGER_TEMPLATE)
        return Page(message.to, renderer.render("pager.txt", source, message.context), message.reference)

    def send(self, transport: Any, outgoing: Page) -> str:
        return str(transport.page(outgoing))


PAGER_POLICY = {**US_CUSTOM_SMS, "channels": {"email": "allowed", "pager": "allowed"}}


@pytest.fixture
def pager() -> Iterator[PagerChannel]:
    channel = register(PagerChannel())
    yield channel
    unregister(channel.name)


@pytest.fixture
def network() -> PagerNetwork:
    return PagerNetwork()


@pytest.fixture
def paging(
    database_url: str, settings_for, clock: FixedClock, pager: PagerChannel, network: PagerNetwork
) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    memory = MemoryTransport()
    app = create_app(
        settings_for(database_url), transports=Transports(email=memory, sms=memory, pager=network), clock=clock
    )
    runtime = runtime_of(app)
    make_campaign(runtime.db, "paging", channels=["email", "pager"], policy_settings=PAGER_POLICY)
    yield runtime
    runtime.db.dispose()


def forward(runtime: Runtime, pager: PagerChannel, *numbers: str) -> list[int]:
    friends = [pager.parse(f"pager:{number}", "NL") for number in numbers]
    return runtime.forwarding.submit("paging", ForwardSubmission(sender_name="Anna", friends=friends)).message_ids


def test_a_channel_defined_in_a_test_alone_is_forwarded_to_and_dispatched(
    paging: Runtime, pager: PagerChannel, network: PagerNetwork
) -> None:
    [message_id] = forward(paging, pager, "4711")

    report = paging.delivery.dispatch()

    assert report.sent == [message_id]
    [page] = network.pages
    assert page.to == "4711"
    # Composed as every message is: the campaign's values, the sender's, a signed link of its own.
    assert page.text.startswith("Page from Acme: Anna sent you http")
    assert "/f/" in page.text
    with paging.db.reading() as session:
        message = session.get(Message, message_id)
        assert message is not None
        assert (message.channel, message.status, message.provider_id) == ("pager", MessageStatus.SENT, "PG1")
        assert page.reference == message.public_id


def test_a_policy_that_does_not_allow_the_channel_holds_its_messages_back(
    paging: Runtime, pager: PagerChannel, network: PagerNetwork
) -> None:
    [message_id] = forward(paging, pager, "4711")
    with paging.db.transaction() as session:
        message = session.get(Message, message_id)
        assert message is not None
        message.forward.campaign.policy_settings = {**US_CUSTOM_SMS, "channels": {"email": "allowed"}}

    report = paging.delivery.dispatch()

    assert report.suppressed == [message_id] and network.pages == []


def test_the_channels_provider_refusal_fails_only_its_message(
    paging: Runtime, pager: PagerChannel, network: PagerNetwork
) -> None:
    refused, taken = forward(paging, pager, "0000", "4711")

    report = paging.delivery.dispatch()

    assert report.failed == [refused] and report.sent == [taken]
    assert [page.to for page in network.pages] == ["4711"]
