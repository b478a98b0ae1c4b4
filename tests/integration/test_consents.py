"""The us policy texts a friend only with that friend's own consent on record (TCPA): checked
when the forward is accepted and again right before the send; consents are imported from the
brand's CSV or given by texting START."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from engine.clock import FixedClock
from engine.contacts import parse_contact
from engine.db import utcnow
from engine.models import Consent, Message
from engine.runtime import Runtime
from engine.services.consents import ConsentImporter
from engine.transports.memory import MemoryTransport
from tests.helpers import deliver_overnight, forward_form, make_campaign, statuses, submission

ANNA_PHONE = "+31612345678"
BOB_PHONE = "+31687654321"


@pytest.fixture
def us(runtime: Runtime) -> str:
    make_campaign(runtime.db, "usa", policy_name="us", policy_settings={}, channels=["email", "sms"])
    return "usa"


def give_consent(runtime: Runtime, number: str, campaign_id: int | None = None) -> None:
    with runtime.db.transaction() as session:
        session.add(
            Consent(
                contact_hash=runtime.hasher.hash(parse_contact(number, "NL")),
                channel="sms",
                campaign_id=campaign_id,
                source="import",
                evidence={"evidence": "web form 2026-11-02"},
            )
        )


def import_csv(runtime: Runtime, text: str, **options):  # type: ignore[no-untyped-def]
    importer = ConsentImporter(runtime.db, runtime.hasher, "NL")
    return importer.import_csv(io.BytesIO(text.encode()), "sms", **options)


@pytest.mark.clock
def test_only_the_friend_who_consented_gets_the_text(
    runtime: Runtime, us: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    give_consent(runtime, ANNA_PHONE)
    receipt = runtime.forwarding.submit(us, submission(ANNA_PHONE, BOB_PHONE, sender_name="Carol"))
    # Both are accepted alike (the sender learns nothing), but only Anna's text is queued.
    assert receipt.friend_count == 2 and len(receipt.forward_ids) == 2
    assert len(receipt.message_ids) == 1
    deliver_overnight(runtime, clock)  # the us policy keeps to quiet hours: at night, it waits
    assert [sms.to for sms in transport.sms] == [ANNA_PHONE]
    assert sorted(statuses(runtime.db).values()) == ["sent", "suppressed"]


def test_a_number_is_answered_alike_with_or_without_consent(app: Flask, runtime: Runtime, us: str) -> None:
    give_consent(runtime, ANNA_PHONE)
    client = app.test_client()
    # The form invites e-mail addresses only (most numbers could not be texted), but a number
    # typed in is taken, and the answer does not tell whether its owner agreed to texts.
    assert "an email address each" in client.get(f"/c/{us}").text
    for friend in (ANNA_PHONE, BOB_PHONE):
        answer = client.post(f"/c/{us}/forward", data=forward_form(client.get(f"/c/{us}").text, friends=[friend]))
        assert answer.status_code == 303
        assert answer.headers["Location"].endswith(f"/c/{us}/thanks")


def test_consent_withdrawn_before_the_send_stops_the_text(
    runtime: Runtime, us: str, transport: MemoryTransport
) -> None:
    give_consent(runtime, ANNA_PHONE)
    receipt = runtime.forwarding.submit(us, submission(ANNA_PHONE))
    with runtime.db.transaction() as session:
        session.execute(update(Consent).values(revoked_at=utcnow()))
    runtime.delivery.deliver(receipt.message_ids)
    assert transport.sms == []
    with runtime.db.reading() as session:
        message = session.scalars(select(Message)).one()
    assert message.status == "suppressed"
    assert message.error == "no consent of the recipient's own on record"


def test_a_consent_to_one_campaign_does_not_reach_another(runtime: Runtime, us: str) -> None:
    other = make_campaign(runtime.db, "usb", policy_name="us", policy_settings={}, channels=["sms"])
    give_consent(runtime, ANNA_PHONE, campaign_id=other.id)
    assert runtime.forwarding.submit(us, submission(ANNA_PHONE)).message_ids == ()
    assert len(runtime.forwarding.submit("usb", submission(ANNA_PHONE)).message_ids) == 1


@pytest.mark.clock
def test_the_brand_imports_consents_with_their_evidence(
    runtime: Runtime, us: str, transport: MemoryTransport, clock: FixedClock
) -> None:
    report = import_csv(
        runtime,
        "contact,given_at,evidence\n"
        f"{ANNA_PHONE},2026-11-01T09:00:00+00:00,double opt-in by text\n"
        f"{ANNA_PHONE},,again\n"
        "not a number,,\n"
        "bob@example.com,,\n"
        f"{BOB_PHONE},yesterday,\n",
        source_note="shop sign-up form export",
    )
    assert (report.rows, report.imported, report.already_on_record, report.problem_count) == (5, 1, 1, 3)
    assert report.problems[0].startswith("line 4: not an e-mail address or a phone number")
    assert report.problems[1] == "line 5: not a phone number"
    assert report.problems[2].startswith("line 6: given_at")
    with runtime.db.reading() as session:
        consent = session.scalars(select(Consent)).one()
    assert consent.evidence == {"imported": "shop sign-up form export", "evidence": "double opt-in by text"}
    assert ANNA_PHONE not in str(consent.evidence) and len(consent.contact_hash) == 64
    # Importing the same file again adds nothing.
    assert import_csv(runtime, f"contact\n{ANNA_PHONE}\n").imported == 0
    runtime.forwarding.submit(us, submission(ANNA_PHONE))
    deliver_overnight(runtime, clock)
    assert [sms.to for sms in transport.sms] == [ANNA_PHONE]


def test_a_consent_cannot_be_dated_in_the_future(runtime: Runtime, us: str) -> None:
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    report = import_csv(runtime, f"contact,given_at\n{ANNA_PHONE},{tomorrow}\n")
    assert report.imported == 0 and "future" in report.problems[0]


def test_the_command_line_imports_and_reports(app: Flask, runtime: Runtime, us: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "consents.csv"
    good.write_text(f"contact\n{ANNA_PHONE}\n{BOB_PHONE}\n")
    result = app.test_cli_runner().invoke(args=["consents", "import", str(good), "--campaign", us])
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 consents recorded" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("phone\n+31600000000\n")
    assert "contact" in app.test_cli_runner().invoke(args=["consents", "import", str(bad)]).output
    assert app.test_cli_runner().invoke(args=["consents", "import", str(good), "--campaign", "nope"]).exit_code == 2
