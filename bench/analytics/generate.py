"""A realistic campaign of N forwards, written by PostgreSQL itself (INSERT … SELECT with
generate_series and random()): a million rows through the service layer would take hours.

The tree grows generation by generation like a campaign with K about 0.9: each forward's friend
forwards on with probability SHARE to 1 to 5 friends (mean 3), 85% by email and 15% by text,
some hours after the click on their own link. Messages (90% delivered), clicks (every forward
that was forwarded on, and 40% of the others), coupons and redemptions (5% of clicked forwards)
and landing visits follow from the forwards. `setseed` makes a run repeatable.
"""

from __future__ import annotations

import psycopg

SHARE = 0.3  # K = SHARE * mean friends (3) = 0.9
ROOT_SHARE = 0.12  # for K = 0.9 a chain holds 1 / (1 - K) = 10 forwards on average; some die young
SPREAD_DAYS = 20


def generate(connection: psycopg.Connection, slug: str, forwards: int, seed: float = 0.42) -> int:
    """Write the campaign SLUG with about `forwards` forwards; returns its id."""
    connection.execute("SELECT setseed(%s)", (seed,))
    campaign_id = _campaign(connection, slug)
    _roots(connection, campaign_id, max(1, round(forwards * ROOT_SHARE)))
    generation, total = 1, _count(connection, campaign_id)
    while total < forwards:
        added = _next_generation(connection, campaign_id, generation, forwards - total)
        if added == 0:
            break
        generation, total = generation + 1, total + added
    _messages(connection, campaign_id)
    _clicks(connection, campaign_id)
    _redemptions(connection, campaign_id)
    _visits(connection, campaign_id)
    return campaign_id


def _campaign(connection: psycopg.Connection, slug: str) -> int:
    row = connection.execute(
        """INSERT INTO campaigns (slug, name, status, offer_title, offer_description, brand_name, sender_email,
               postal_address, support_contact, channels, policy_name, policy_settings, max_friends_per_submission,
               caps, sms_segment_limit, sms_smart_encoding, coupon_mode, created_at, updated_at, ends_at)
           VALUES (%s, 'Benchmark campaign', 'active', 'An offer', '', 'Bench', 'offers@example.com', '1 Example St',
               '', '["email", "sms"]', 'us', '{}', 5, '{}', 3, true, 'generated', now() - interval '21 days', now(),
               now() + interval '10 days')
           RETURNING id""",
        (slug,),
    ).fetchone()
    assert row is not None
    return int(row[0])


_FORWARD_COLUMNS = """(public_id, campaign_id, parent_id, generation, channel, sender_name, sender_contact_hash,
    recipient_contact_hash, policy_name, policy_version, client_ip_hash, created_at)"""


def _roots(connection: psycopg.Connection, campaign_id: int, count: int) -> None:
    connection.execute(  # the f-string adds only this module's constants
        f"""INSERT INTO forwards {_FORWARD_COLUMNS}
            SELECT substr(md5(random()::text || n), 1, 20), %(c)s, NULL, 1,
                   CASE WHEN random() < 0.85 THEN 'email' ELSE 'sms' END,
                   'Root ' || (n / 3), md5('root' || (n / 3)), md5('friend' || n || random()), 'us', 1,
                   md5('ip' || (n / 3)),
                   now() - interval '{SPREAD_DAYS} days' + (n / 3) * interval '1 second' * (%(spread)s / %(count)s)
            FROM generate_series(0, %(count)s - 1) AS n""",  # noqa: S608
        {"c": campaign_id, "count": count, "spread": SPREAD_DAYS * 86400 * 0.5},
    )


def _next_generation(connection: psycopg.Connection, campaign_id: int, generation: int, room: int) -> int:
    """Children for the forwards of `generation` whose friend forwarded on; at most `room`."""
    cursor = connection.execute(  # the f-string adds only this module's constants
        f"""INSERT INTO forwards {_FORWARD_COLUMNS}
            SELECT substr(md5(random()::text || p.id || k), 1, 20), p.campaign_id, p.id, p.generation + 1,
                   CASE WHEN random() < 0.85 THEN 'email' ELSE 'sms' END,
                   'Person ' || p.id, p.recipient_contact_hash, md5('friend' || p.id || '-' || k || random()),
                   'us', 1, md5('ip' || p.id), p.created_at + p.delay
            FROM (SELECT id, campaign_id, generation, recipient_contact_hash, created_at,
                         1 + floor(random() * 5)::int AS friends,
                         make_interval(secs => -ln(1 - random()) * 16 * 3600) AS delay
                  FROM forwards WHERE campaign_id = %(c)s AND generation = %(g)s AND random() < %(share)s) AS p
            CROSS JOIN LATERAL generate_series(1, p.friends) AS k
            WHERE p.created_at + p.delay < now()
            LIMIT %(room)s""",  # noqa: S608
        {"c": campaign_id, "g": generation, "share": SHARE, "room": room},
    )
    return cursor.rowcount


def _count(connection: psycopg.Connection, campaign_id: int) -> int:
    row = connection.execute("SELECT count(*) FROM forwards WHERE campaign_id = %s", (campaign_id,)).fetchone()
    return int(row[0]) if row else 0


def _messages(connection: psycopg.Connection, campaign_id: int) -> None:
    connection.execute(
        """INSERT INTO messages (public_id, forward_id, channel, status, attempts, policy_name, policy_version,
               created_at, updated_at, sent_at)
           SELECT substr(md5(random()::text || f.id), 1, 20), f.id, f.channel,
                  CASE WHEN r < 0.6 THEN 'delivered' WHEN r < 0.9 THEN 'sent' WHEN r < 0.95 THEN 'bounced'
                       ELSE 'failed' END,
                  1, 'us', 1, f.created_at, f.created_at, f.created_at
           FROM (SELECT id, channel, created_at, random() AS r FROM forwards WHERE campaign_id = %s) AS f""",
        (campaign_id,),
    )


def _clicks(connection: psycopg.Connection, campaign_id: int) -> None:
    # A forward that was forwarded on was clicked first: between it and its first child.
    connection.execute(
        """INSERT INTO clicks (forward_id, client_ip_hash, user_agent, created_at)
           SELECT f.id, md5('click' || f.id), 'bench',
                  CASE WHEN c.first IS NULL THEN f.created_at + random() * interval '8 hours'
                       ELSE f.created_at + random() * (c.first - f.created_at) END
           FROM forwards f
           LEFT JOIN (SELECT parent_id, min(created_at) AS first FROM forwards WHERE campaign_id = %(c)s
                      GROUP BY parent_id) AS c ON c.parent_id = f.id
           WHERE f.campaign_id = %(c)s AND (c.first IS NOT NULL OR random() < 0.4)""",
        {"c": campaign_id},
    )


def _redemptions(connection: psycopg.Connection, campaign_id: int) -> None:
    connection.execute(
        """INSERT INTO coupons (campaign_id, code, source, forward_id, assigned_at, created_at)
           SELECT %(c)s, 'B' || forward_id, 'generated', forward_id, created_at, created_at
           FROM clicks WHERE forward_id IN (SELECT id FROM forwards WHERE campaign_id = %(c)s) AND random() < 0.05""",
        {"c": campaign_id},
    )
    connection.execute(
        """INSERT INTO redemptions (coupon_id, campaign_id, forward_id, reported_by, detail, created_at)
           SELECT id, campaign_id, forward_id, 'bench', '{}', assigned_at + interval '1 day'
           FROM coupons WHERE campaign_id = %(c)s""",
        {"c": campaign_id},
    )


def _visits(connection: psycopg.Connection, campaign_id: int) -> None:
    # Every click lands on the page; direct visitors: twice the roots (half of them forward).
    connection.execute(
        """INSERT INTO visits (campaign_id, day, generation, channel, count)
           SELECT %(c)s, day, generation, channel, sum(n) FROM (
               SELECT (k.created_at AT TIME ZONE 'UTC')::date AS day, f.generation + 1 AS generation,
                      f.channel, count(*) AS n
               FROM clicks k JOIN forwards f ON f.id = k.forward_id WHERE f.campaign_id = %(c)s GROUP BY 1, 2, 3
               UNION ALL
               SELECT (created_at AT TIME ZONE 'UTC')::date, 1, 'direct', 2 * count(DISTINCT sender_contact_hash)
               FROM forwards WHERE campaign_id = %(c)s AND generation = 1 GROUP BY 1
           ) AS v GROUP BY day, generation, channel""",
        {"c": campaign_id},
    )


def add_activity(connection: psycopg.Connection, campaign_id: int, forwards: int) -> dict[str, int]:
    """What a campaign does between two refreshes: `forwards` new forwards (a friend each of a
    random older forward, with its message), clicks on 40% of them and on old forwards, a few
    redemptions, and late delivery reports (bounces) on old messages. How many of each."""
    old = max(1, forwards // 5)
    added = {
        "forwards": connection.execute(
            f"""INSERT INTO forwards {_FORWARD_COLUMNS}
                SELECT substr(md5(random()::text || p.id), 1, 20), p.campaign_id, p.id, p.generation + 1,
                       CASE WHEN random() < 0.85 THEN 'email' ELSE 'sms' END,
                       'Person ' || p.id, p.recipient_contact_hash, md5('friend' || p.id || random()),
                       'us', 1, md5('ip' || p.id), now() - random() * interval '1 hour'
                FROM (SELECT id, campaign_id, generation, recipient_contact_hash FROM forwards
                      WHERE campaign_id = %(c)s ORDER BY random() LIMIT %(n)s) AS p""",  # noqa: S608
            {"c": campaign_id, "n": forwards},
        ).rowcount
    }
    added["messages"] = connection.execute(
        """INSERT INTO messages (public_id, forward_id, channel, status, attempts, policy_name, policy_version,
               created_at, updated_at, sent_at)
           SELECT substr(md5(random()::text || f.id), 1, 20), f.id, f.channel, 'sent', 1, 'us', 1, now(), now(), now()
           FROM forwards f
           WHERE f.campaign_id = %(c)s AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.forward_id = f.id)""",
        {"c": campaign_id},
    ).rowcount
    added["clicks"] = connection.execute(
        """INSERT INTO clicks (forward_id, client_ip_hash, user_agent, created_at)
           SELECT id, md5('click' || id), 'bench', now() FROM (
               (SELECT id FROM forwards WHERE campaign_id = %(c)s ORDER BY id DESC LIMIT %(n)s)
               UNION ALL
               (SELECT id FROM forwards WHERE campaign_id = %(c)s ORDER BY random() LIMIT %(old)s)) AS f
           WHERE random() < 0.4 OR id < (SELECT max(id) - %(n)s FROM forwards)""",
        {"c": campaign_id, "n": forwards, "old": old},
    ).rowcount
    connection.execute(
        """INSERT INTO coupons (campaign_id, code, source, forward_id, assigned_at, created_at)
           SELECT %(c)s, 'N' || f.id, 'generated', f.id, now(), now()
           FROM (SELECT id FROM forwards WHERE campaign_id = %(c)s ORDER BY random() LIMIT %(n)s) AS f
           WHERE NOT EXISTS (SELECT 1 FROM coupons c WHERE c.forward_id = f.id)""",
        {"c": campaign_id, "n": max(1, forwards // 50)},
    )
    added["redemptions"] = connection.execute(
        """INSERT INTO redemptions (coupon_id, campaign_id, forward_id, reported_by, detail, created_at)
           SELECT c.id, c.campaign_id, c.forward_id, 'bench', '{}', now() FROM coupons c
           WHERE c.campaign_id = %(c)s AND NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.coupon_id = c.id)""",
        {"c": campaign_id},
    ).rowcount
    added["delivery reports"] = connection.execute(
        """UPDATE messages SET status = 'bounced', updated_at = now()
           WHERE id IN (SELECT m.id FROM messages m JOIN forwards f ON f.id = m.forward_id
                        WHERE f.campaign_id = %(c)s AND m.status = 'sent' ORDER BY random() LIMIT %(old)s)""",
        {"c": campaign_id, "old": old},
    ).rowcount
    return added
