"""Contact hashes kept before canonical identities (the address only lowercased): the rehash
moves everything that decides who may be messaged, the upgrade refuses to serve and send
until it has run, and rows it could not move still count for their own spelling: at send
time, in the compliance console and in data-subject requests."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from flask import Flask
from sqlalchemy import select

from engine.cli import run_worker
from engine.models import (
    Consent,
    ConsentSource,
    Coupon,
    Forward,
    Message,
    MessageStatus,
    PendingUpgrade,
    Redemption,
    Reward,
    Suppression,
    SuppressionScope,
    SuppressionSource,
)
from engine.runtime import Runtime
from engine.services.identities import CONTACT_REHASH, RehashPending
from engine.services.privacy import PrivacyService
from engine.services.suppression import suppress_contact
from tests.helpers import csrf_token, make_campaign, staff_client, submission
from workers.jobs import dispatch

KEY = "test-contact-hash-key-0123456789"  # the test settings' CONTACT_HASH_KEY


def old_hash(address: str) -> str:
    """What versions before canonical identities stored: an HMAC of the address lowercased."""
    return hmac.new(KEY.encode(), f"email:{address.lower()}".encode(), hashlib.sha256).hexdigest()


def opt_out_under(runtime: Runtime, contact_hash: str) -> None:
    with runtime.db.transaction() as session:
        suppress_contact(
            session, contact_hash, "email", SuppressionScope.GLOBAL, SuppressionSource.LINK, now=runtime.clock.now()
        )


def test_an_opt_out_kept_under_an_old_hash_stops_the_send_of_that_spelling(
    runtime: Runtime, campaign, transport
) -> None:  # type: ignore[no-untyped-def]
    runtime.forwarding.submit("spring", submission("V.ictim+x@gmail.com", "bob@example.com"))
    # Only then does the old opt-out show up: a row no rehash could move (its address was never
    # held), as an older version kept it.
    opt_out_under(runtime, old_hash("V.ictim+x@gmail.com"))
    runtime.delivery.dispatch()
    assert [email.to for email in transport.emails] == ["bob@example.com"]
    with runtime.db.reading() as session:
        statuses = list(session.scalars(select(Message.status).order_by(Message.id)))
    assert statuses == [MessageStatus.SUPPRESSED, MessageStatus.SENT]


def test_the_rehash_moves_consents_and_rewards_with_forwards_and_suppressions(app: Flask, runtime: Runtime) -> None:
    campaign = make_campaign(runtime.db)
    old = old_hash("V.ictim+x@gmail.com")
    runtime.forwarding.submit("spring", submission("V.ictim+x@gmail.com"))
    runtime.forwarding.submit("spring", submission("friend@example.com", sender_contact="victim@example.org"))
    with runtime.db.transaction() as session:
        received, sent = session.scalars(select(Forward).order_by(Forward.id)).all()
        received.recipient_contact_hash = old
        sent.sender_contact_hash = old  # the same person, forwarding on
        session.add(Consent(contact_hash=old, channel="email", source=ConsentSource.IMPORT.value))
        coupon = Coupon(campaign_id=campaign.id, code="X1", forward_id=sent.id)
        session.add(coupon)
        session.flush()
        redemption = Redemption(coupon_id=coupon.id, campaign_id=campaign.id, forward_id=sent.id)
        session.add(redemption)
        session.flush()
        session.add(
            Reward(
                campaign_id=campaign.id,
                redemption_id=redemption.id,
                forward_id=sent.id,
                referrer_key=f"c:{old}",
                referrer_name="Victim",
            )
        )
        suppress_contact(
            session, old, "email", SuppressionScope.GLOBAL, SuppressionSource.LINK, now=runtime.clock.now()
        )

    result = app.test_cli_runner().invoke(args=["contacts", "rehash"])
    assert result.exit_code == 0, result.output
    assert "rehashed 2 forwards, 1 suppressions, 1 consents and 1 rewards" in result.output

    new = runtime.hasher.hash(submission("victim@gmail.com").friends[0])
    with runtime.db.reading() as session:
        assert session.scalars(select(Consent.contact_hash)).all() == [new]
        assert session.scalars(select(Reward.referrer_key)).all() == [f"c:{new}"]
        assert session.scalars(select(Suppression.contact_hash)).all() == [new]
        assert set(session.scalars(select(Forward.recipient_contact_hash))) == {new, sent.recipient_contact_hash}
    # What the consent and the opt-out decide now holds for every spelling.
    make_campaign(runtime.db, "autumn")
    runtime.forwarding.submit("autumn", submission("victim@googlemail.com"))
    with runtime.db.reading() as session:
        assert session.scalars(select(Message.status).order_by(Message.id.desc())).first() == MessageStatus.SUPPRESSED


def mark_rehash_owed(runtime: Runtime) -> None:
    with runtime.db.transaction() as session:
        session.add(PendingUpgrade(name=CONTACT_REHASH))


def test_while_the_rehash_is_owed_the_app_answers_503_and_the_worker_does_not_start(
    app: Flask, runtime: Runtime, campaign, caplog, capsys
) -> None:  # type: ignore[no-untyped-def]
    mark_rehash_owed(runtime)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # the process lives: restarting it would not help
    landing = client.get("/c/spring")
    assert landing.status_code == 503 and landing.headers["Retry-After"]
    owed = [r for r in caplog.records if "contacts rehash" in r.getMessage()]
    assert len(owed) == 1  # one clear line, not one per request
    # Opt-outs are still taken in: a provider's STOP may never come again (this one is unsigned).
    assert client.post("/hooks/twilio/inbound", data={"Body": "STOP"}).status_code == 403

    with app.app_context(), pytest.raises(SystemExit) as stopped:
        run_worker(burst=True)
    assert stopped.value.code == 1  # refused, as every command that refuses
    assert "flask --app wsgi contacts rehash" in capsys.readouterr().err
    # Nor does a dispatch job send (a plain `rq worker`, or the in-process queue).
    with app.app_context(), pytest.raises(RehashPending):
        dispatch()

    assert app.test_cli_runner().invoke(args=["contacts", "rehash"]).exit_code == 0
    assert client.get("/c/spring").status_code == 200


def test_the_compliance_search_finds_opt_outs_logged_under_the_old_hash(app: Flask, runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    # The log is append-only: entry 1 keeps the old hash for good. Entry 3 is someone else.
    opt_out_under(runtime, old_hash("V.ictim+x@gmail.com"))
    opt_out_under(runtime, runtime.hasher.hash(submission("victim@gmail.com").friends[0]))
    opt_out_under(runtime, runtime.hasher.hash(submission("someone@example.com").friends[0]))
    client = staff_client(app, "compliance")
    page = client.get("/compliance/opt-outs")
    searched = client.post(
        "/compliance/opt-outs",
        data={"contact": "V.ictim+x@gmail.com", "csrf_token": csrf_token(page.text)},
        follow_redirects=True,
    )
    assert searched.status_code == 200
    found = {seq for seq in (1, 2, 3) if f'href="/compliance/opt-outs/{seq}"' in searched.text}
    assert found == {1, 2}
    # The CSV export of that selection, from the page's link, too.
    export = client.get("/compliance/opt-outs.csv", query_string=searched.request.args)
    assert [line.split(",")[0] for line in export.text.splitlines()[1:]] == ["1", "2"]

    search = client.get("/compliance/contacts")
    report = client.post(
        "/compliance/contacts",
        data={"contact": "v.ictim+x@gmail.com", "csrf_token": csrf_token(search.text)},
        follow_redirects=True,
    )
    assert report.status_code == 200
    assert {seq for seq in (1, 2, 3) if f'href="/compliance/opt-outs/{seq}"' in report.text} == {1, 2}


def test_export_and_erasure_find_rows_under_the_old_hash_of_the_spelling(runtime: Runtime, campaign) -> None:  # type: ignore[no-untyped-def]
    old = old_hash("V.ictim+x@gmail.com")
    runtime.forwarding.submit("spring", submission("friend@example.com", sender_contact="V.ictim+x@gmail.com"))
    with runtime.db.transaction() as session:
        session.scalars(select(Forward)).one().sender_contact_hash = old  # as an older version kept it
        session.add(Consent(contact_hash=old, channel="email", source=ConsentSource.IMPORT.value))
    opt_out_under(runtime, old)
    privacy = PrivacyService(runtime.db, runtime.hasher, "NL")

    document = privacy.export("V.ictim+x@gmail.com")
    assert len(document["forwards_sent"]) == 1
    assert len(document["consents"]) == 1
    assert len(document["suppressions"]) == 1
    assert len(document["opt_out_log"]) == 1

    report = privacy.erase("V.ictim+x@gmail.com")
    assert report.forwards_scrubbed == 1 and report.consents_revoked == 1
    with runtime.db.reading() as session:
        assert session.scalars(select(Forward.sender_name)).one() == "(erased)"
