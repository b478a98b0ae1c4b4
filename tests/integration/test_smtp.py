"""The SMTP transport against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from engine.transports import AccountError, AmbiguousError, OutgoingEmail, PermanentError, TransientError
from engine.transports.smtp import SmtpSettings, SmtpTransport
from tests.stubs.tls import local_ca


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, counts sessions, can refuse recipients."""

    messages: list[tuple[Envelope, Message]] = field(default_factory=list)
    sessions: set[int] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)
    # Cut the connection, without an answer, at this command ("RCPT": before the message was
    # sent; "DATA": once it has arrived whole).
    cut_at: str | None = None

    async def handle_RCPT(self, server, session: Session, envelope: Envelope, address: str, options) -> str:  # type: ignore[no-untyped-def]
        self.sessions.add(id(session))
        if self.cut_at == "RCPT":
            server.transport.abort()
            return "250 OK"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session: Session, envelope: Envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append((envelope, email.message_from_bytes(envelope.content)))
        if self.cut_at == "DATA":
            server.transport.abort()
        return "250 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"fluister", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port to check that it started
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=local_ca().server_context(),  # offers STARTTLS, with a certificate from a local CA
        authenticator=authenticate,
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    yield handler, port
    controller.stop()


def outgoing(to: str = "bob@example.com", **fields: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "to": to,
        "from_name": "Koffie & Co",
        "from_email": "offers@koffie.example",
        "subject": "Anna thinks you'll like this",
        "html": "<p>Hi from <b>Anna</b></p>",
        "text": "Hi from Anna\n",
        "headers": {
            "Message-ID": "<abc123@koffie.example>",
            "List-Unsubscribe": "<https://fluister.test/u/tok>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "reference": "abc123",
    }
    values.update(fields)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


def transport(port: int, query: str = "?starttls=off", credentials: str = "") -> SmtpTransport:
    settings = SmtpSettings.from_url(f"smtp://{credentials}127.0.0.1:{port}{query}", timeout=5)
    return SmtpTransport(settings, tls_context=local_ca().client_context())


def test_multipart_message_with_unsubscribe_headers_over_one_connection(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    smtp = transport(port, query="", credentials="fluister:s3cret@")  # STARTTLS when offered
    provider_ids = [smtp.send_email(outgoing(f"friend{i}@example.com")) for i in range(3)]
    smtp.close()

    assert provider_ids[0] == "<abc123@koffie.example>"
    assert [m["To"] for _, m in handler.messages] == [f"friend{i}@example.com" for i in range(3)]
    assert len(handler.sessions) == 1  # the connection was reused
    envelope, message = handler.messages[0]
    assert envelope.mail_from == "offers@koffie.example"
    assert message["From"] == "Koffie & Co <offers@koffie.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Fluister-Message"] == "abc123"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]


def test_wrong_password_is_an_account_problem(mailbox) -> None:  # type: ignore[no-untyped-def]
    _, port = mailbox
    with pytest.raises(AccountError, match="authentication"):
        transport(port, query="", credentials="fluister:wrong@").send_email(outgoing())


def test_the_password_never_travels_without_tls(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    with pytest.raises(AccountError, match="without TLS"):
        transport(port, query="?starttls=off", credentials="fluister:s3cret@").send_email(outgoing())
    assert handler.messages == []


@pytest.mark.parametrize(
    ("reply", "error"), [("550 5.1.1 No such user", PermanentError), ("451 4.3.0 Try later", TransientError)]
)
def test_refused_recipient_maps_to_the_smtp_class(mailbox, reply: str, error: type) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    handler.refuse["nobody@example.com"] = reply
    smtp = transport(port)
    with pytest.raises(error) as raised:
        smtp.send_email(outgoing("nobody@example.com"))
    assert raised.value.code == reply[:3]
    smtp.send_email(outgoing("bob@example.com"))  # the connection is still good
    assert [m["To"] for _, m in handler.messages] == ["bob@example.com"]


def test_a_connection_cut_before_the_message_was_whole_is_tried_again(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    handler.cut_at = "RCPT"
    with pytest.raises(TransientError, match="before the message was complete"):
        transport(port).send_email(outgoing())
    assert handler.messages == []


def test_a_connection_cut_after_the_message_arrived_whole_may_have_delivered_it(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    handler.cut_at = "DATA"
    with pytest.raises(AmbiguousError, match="connection lost during send"):
        transport(port).send_email(outgoing())
    assert len(handler.messages) == 1  # it had arrived: sending it again would send it twice


def test_server_down_is_transient_nothing_was_sent() -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        transport(1).send_email(outgoing())


def test_starttls_required_is_used(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    transport(port, query="?starttls=required").send_email(outgoing())
    assert len(handler.messages) == 1


def test_header_injection_is_impossible(mailbox) -> None:  # type: ignore[no-untyped-def]
    _, port = mailbox
    with pytest.raises(ValueError):
        transport(port).send_email(outgoing(subject="Hi\r\nBcc: victim@example.com"))
    with pytest.raises(ValueError):
        transport(port).send_email(
            outgoing(headers={"List-Unsubscribe": "<https://x.example/u/t>\r\nBcc: v@x.example"})
        )


@pytest.mark.parametrize("url", ["http://host", "smtp://", "smtp://h?starttls=maybe"])
def test_bad_smtp_urls_are_named(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpSettings.from_url(url)


# A one-click link as long as real ones are: a signed token of about a hundred characters.
LONG_UNSUBSCRIBE = (
    "https://offers.koffie-and-co.example/u/" + "eyJtIjoiMDFKQ1g3WlRWNjhLUTNNNEVYQjJQWTlSNUgiLCJwIjoidSJ9" * 2
)
MAILTO = "mailto:unsubscribe@koffie-and-co.example?subject=unsubscribe%2001JCX7ZTV68KQ3M4EXB2PY9R5H"


def raw_headers(content: bytes) -> dict[str, tuple[bytes, str]]:
    """Each header as it crossed the wire (folded) and unfolded, by lower-case name."""
    head = content.split(b"\r\n\r\n", 1)[0]
    headers: dict[str, tuple[bytes, str]] = {}
    for line in re.split(rb"\r\n(?![ \t])", head):
        name, _, value = line.partition(b":")
        headers[name.decode().lower()] = (line, re.sub(r"\r\n([ \t])", r"\1", value.decode("ascii")).strip())
    return headers


def test_headers_providers_read_cross_the_wire_unencoded_and_folded_only_between_words(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    assert len(LONG_UNSUBSCRIBE) > 120
    list_unsubscribe = f"<{LONG_UNSUBSCRIBE}>, <{MAILTO}>"
    message_id = "<01JCX7ZTV68KQ3M4EXB2PY9R5H@mail.koffie-and-co.example>"
    transport(port).send_email(
        outgoing(
            from_name="Koffie and Co, Amsterdam",
            subject="Anna dacht aan je: gratis koffie \u2615 bij Koffie & Co, alleen deze week in Amsterdam-Zuid",
            headers={
                "Message-ID": message_id,
                "List-Unsubscribe": list_unsubscribe,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
    )
    envelope, _ = handler.messages[0]
    wire = raw_headers(envelope.original_content or envelope.content)
    for name, value in [
        ("list-unsubscribe", list_unsubscribe),
        ("list-unsubscribe-post", "List-Unsubscribe=One-Click"),
        ("message-id", message_id),
        ("from", '"Koffie and Co, Amsterdam" <offers@koffie.example>'),
        ("x-fluister-message", "abc123"),
    ]:
        folded, unfolded = wire[name]
        assert b"=?" not in folded, folded  # no RFC 2047 encoded word: providers read it as it is
        assert re.sub(r",\s+", ", ", unfolded) == value
        # Folded, if at all, only after the comma between the two addresses; no line over 998.
        for continuation in folded.split(b"\r\n")[1:]:
            assert continuation.startswith(b" <"), folded
        assert all(len(line) <= 998 for line in folded.split(b"\r\n"))
    # The one-click link is whole on one line of the header, as the mailbox providers look for it.
    assert f"<{LONG_UNSUBSCRIBE}>".encode() in wire["list-unsubscribe"][0]
    # A subject with non-ASCII text is still an encoded word, and reads back as written.
    folded_subject, subject = wire["subject"]
    assert b"=?utf-8?" in folded_subject
    assert str(make_header(decode_header(subject))) == (
        "Anna dacht aan je: gratis koffie \u2615 bij Koffie & Co, alleen deze week in Amsterdam-Zuid"
    )


def test_a_display_name_in_another_script_is_encoded_and_the_address_is_not(mailbox) -> None:  # type: ignore[no-untyped-def]
    handler, port = mailbox
    transport(port).send_email(outgoing(from_name="Caf\u00e9 Zo\u00eb"))
    envelope, message = handler.messages[0]
    folded, _ = raw_headers(envelope.original_content or envelope.content)["from"]
    assert folded.endswith(b" <offers@koffie.example>")
    assert str(make_header(decode_header(message["From"]))) == "Caf\u00e9 Zo\u00eb <offers@koffie.example>"
