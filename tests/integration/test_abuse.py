"""The form against floods and bots: caps with friendly 429s, a honeypot, a render stamp,
disposable addresses. A refused submission leaves counters and an audit record, nothing else."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import create_app
from engine.models import Message, Rejection
from engine.runtime import Runtime
from tests.helpers import count, counts, forward_form, make_campaign, runtime_of, submission


def post(client: FlaskClient, slug: str = "spring", ip: str = "203.0.113.7", **fields):  # type: ignore[no-untyped-def]
    form = forward_form(client.get(f"/c/{slug}").text, **fields)
    return client.post(f"/c/{slug}/forward", data=form, environ_base={"REMOTE_ADDR": ip})


def reasons(runtime: Runtime) -> list[str]:
    with runtime.db.reading() as session:
        return list(session.scalars(select(Rejection.reason).order_by(Rejection.id)))


def test_the_31st_submission_from_one_address_in_an_hour_is_told_when_to_come_back(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    # This is about the hard cap: the proof of work asked past five an hour is off (test_challenge.py).
    make_campaign(runtime.db, "office", caps={"challenge_after_submissions_per_ip_per_hour": None})
    client = app.test_client()
    # Thirty people behind one address (an office, say), each forwarding to one friend.
    for n in range(30):
        sender = {
            "sender_name": "Sender " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[n % 26] * (1 + n // 26),
            "sender_contact": f"s{n}@example.com",
        }
        assert post(client, "office", friends=[f"f{n}@example.com"], **sender).status_code == 303
    before = counts(runtime.db)
    refused = post(client, "office", friends=["late@example.com"], sender_contact="late-sender@example.com")
    assert refused.status_code == 429
    assert 100 <= int(refused.headers["Retry-After"]) <= 120  # one submission frees up every 2 minutes
    assert "the number of forwards from your connection in an hour" in refused.text
    assert "about 2 minutes" in refused.text
    # Not a dead end: the form comes back as typed. Shares count against this cap too, so the
    # share buttons are not offered (they would be refused as well).
    assert 'value="late@example.com"' in refused.text and 'value="late-sender@example.com"' in refused.text
    assert 'action="/c/office/share"' not in refused.text
    assert counts(runtime.db) == before
    assert reasons(runtime) == ["submissions per IP per hour"]
    # Another address is not held back by this one.
    # (Anonymous senders count as one sender per address: ten friends a day.)
    assert post(client, "office", ip="198.51.100.9", friends=["other@example.com"]).status_code == 303


def test_a_sender_reaches_ten_friends_a_day(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    me = {"sender_contact": "anna@example.com"}
    for batch in range(2):
        friends = [f"b{batch}-{i}@example.com" for i in range(5)]
        assert post(client, friends=friends, ip=f"203.0.113.{batch}", **me).status_code == 303
    refused = post(client, friends=["one-more@example.com"], ip="203.0.113.99", **me)
    assert refused.status_code == 429
    assert "the number of friends you can send this offer to in a day" in refused.text
    # The friend typed is kept, and sharing the offer oneself (which no sender cap holds) is offered.
    assert 'value="one-more@example.com"' in refused.text
    assert 'action="/c/spring/share"' in refused.text
    assert count(runtime.db, Message) == 10


def test_campaign_caps_can_be_set_per_campaign(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    make_campaign(runtime.db, "tight", caps={"submissions_per_ip_per_hour": 2, "campaign_messages_total": 3})
    client = app.test_client()
    assert post(client, "tight", friends=["a@example.com", "b@example.com"]).status_code == 303
    refused = post(client, "tight", friends=["c@example.com", "d@example.com"])
    assert refused.status_code == 429
    assert "This offer has reached the number of messages it sends. Nothing was sent." in refused.text
    assert "Retry-After" not in refused.headers


def test_a_friend_gets_at_most_three_forwarded_offers_in_30_days_and_nobody_is_told(site) -> None:  # type: ignore[no-untyped-def]
    _, runtime = site
    for slug in ("c1", "c2", "c3", "c4"):
        make_campaign(runtime.db, slug)
        receipt = runtime.forwarding.submit(slug, submission("popular@example.com", client_ip=f"192.0.2.{len(slug)}"))
        assert receipt.friend_count == 1  # the same confirmation every time
    with runtime.db.reading() as session:
        statuses = list(session.scalars(select(Message.status).order_by(Message.id)))
    assert statuses == ["queued", "queued", "queued", "capped"]


def test_the_honeypot_answers_a_bot_like_a_person_and_sends_nothing(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    response = post(app.test_client(), friends=["victim@example.com"], website="http://spam.example")
    assert response.status_code == 303 and response.headers["Location"].endswith("/c/spring/thanks")
    assert count(runtime.db, Message) == 0
    assert reasons(runtime) == ["honeypot"]


def test_a_form_sent_faster_than_a_person_types_is_refused(database_url: str, settings_for) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database_url, min_form_seconds=30))
    runtime = runtime_of(app)
    make_campaign(runtime.db)
    response = post(app.test_client(), friends=["bob@example.com"])
    assert response.status_code == 422
    assert "That was quick!" in response.text
    assert count(runtime.db, Message) == 0
    assert reasons(runtime) == ["form sent too fast"]
    runtime.db.dispose()


def test_a_forged_render_stamp_is_an_expired_form(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    response = post(app.test_client(), friends=["bob@example.com"], rendered="forged.stamp.value")
    assert response.status_code == 422
    assert "This form has expired" in response.text
    assert count(runtime.db, Message) == 0


def test_an_old_render_stamp_still_works_after_a_slow_person(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app, _ = site
    client = app.test_client()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the page was opened an hour ago
    page = client.get("/c/spring").text
    monkeypatch.undo()
    form = forward_form(page, friends=["bob@example.com"])
    assert client.post("/c/spring/forward", data=form).status_code == 303


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"friends": ["x@mailinator.com"]}, "Friend 1: addresses from disposable mail services can't receive offers."),
        ({"sender_contact": "me@mailinator.com"}, "Please use an address of your own"),
    ],
)
def test_disposable_addresses_are_refused(site, fields: dict[str, object], message: str) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    response = post(app.test_client(), **fields)
    assert response.status_code == 422
    assert message in response.text.replace("&#39;", "'")
    assert count(runtime.db, Message) == 0


def test_a_flood_of_blank_friend_fields_is_not_echoed_back(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    form = forward_form(client.get("/c/spring").text, sender_name="", friends=["bob@example.com", *[""] * 5000])
    response = client.post("/c/spring/forward", data=form)
    assert response.status_code == 422
    assert response.text.count('name="friend"') <= 50
    assert count(runtime.db, Message) == 0


def test_a_render_stamp_is_spent_by_the_forward_it_sent(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    client = app.test_client()
    page = client.get("/c/spring").text
    first = client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"]))
    assert first.status_code == 303
    before = counts(runtime.db)
    # The same page's form again, to someone else: a script replaying one stamp, or a double
    # click. It gets the confirmation a person would; nothing more is written.
    again = client.post("/c/spring/forward", data=forward_form(page, friends=["carol@example.com"]))
    assert again.status_code == 303 and again.headers["Location"].endswith("/c/spring/thanks")
    assert counts(runtime.db) == before
    assert reasons(runtime) == ["form sent twice"]


def test_a_form_whose_sending_failed_can_be_sent_again(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from engine.services.forwarding import ForwardingService

    app, runtime = site
    client = app.test_client()
    page = client.get("/c/spring").text
    write = ForwardingService._write
    failures = iter([OperationalError("INSERT", {}, Exception("the server closed the connection"))])

    def write_once_failing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for failure in failures:
            raise failure
        return write(self, *args, **kwargs)

    monkeypatch.setattr(ForwardingService, "_write", write_once_failing)
    failed = client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"]))
    assert failed.status_code == 503
    assert count(runtime.db, Message) == 0
    # The browser's retry posts the same form, with the same stamp: this time it is sent.
    again = client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"]))
    assert again.status_code == 303
    assert count(runtime.db, Message) == 1
    # And that forward spent the stamp.
    third = client.post("/c/spring/forward", data=forward_form(page, friends=["carol@example.com"]))
    assert third.status_code == 303 and count(runtime.db, Message) == 1


def test_a_form_whose_cap_check_lost_its_answer_can_be_sent_again(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import redis

    from engine.caps import Limiter

    app, runtime = site
    client = app.test_client()
    page = client.get("/c/spring").text
    evalsha = Limiter._evalsha
    lost = iter([redis.ConnectionError("Connection reset by peer")])

    def answer_lost_once(self, keys, args):  # type: ignore[no-untyped-def]
        answer = evalsha(self, keys, args)  # Redis ran the script: the stamp is spent...
        for error in lost:
            raise error  # ...but its answer never arrived
        return answer

    monkeypatch.setattr(Limiter, "_evalsha", answer_lost_once)
    failed = client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"]))
    assert failed.status_code == 503
    assert count(runtime.db, Message) == 0
    again = client.post("/c/spring/forward", data=forward_form(page, friends=["bob@example.com"]))
    assert again.status_code == 303
    assert count(runtime.db, Message) == 1


def test_a_render_stamp_works_only_in_the_session_it_was_made_for(site) -> None:  # type: ignore[no-untyped-def]
    app, runtime = site
    farm = app.test_client()
    stamp = forward_form(farm.get("/c/spring").text)["rendered"]
    visitor = app.test_client()
    form = forward_form(visitor.get("/c/spring").text, friends=["bob@example.com"], rendered=stamp)
    refused = visitor.post("/c/spring/forward", data=form)
    assert refused.status_code == 422
    assert "This form has expired" in refused.text
    assert count(runtime.db, Message) == 0
