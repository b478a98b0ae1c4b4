"""Pytest fixtures for the provider stubs. Load them with
`pytest_plugins = ["tests.stubs.fixtures"]` in a test module (or the root conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stubs.receiver import CallbackReceiver
from tests.stubs.sendgrid import SendGridStub
from tests.stubs.twilio import TwilioStub


@pytest.fixture
def sendgrid_stub() -> Iterator[SendGridStub]:
    with SendGridStub.running() as stub:
        yield stub


@pytest.fixture
def twilio_stub() -> Iterator[TwilioStub]:
    with TwilioStub.running() as stub:
        yield stub


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver.running() as receiver:
        yield receiver
