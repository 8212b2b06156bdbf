"""Queue building: one set-based insert, idempotent, opt-outs, addresses, restarts, samples."""

from __future__ import annotations

import pytest
from audience_helpers import new_run, store_channel, store_segment

from campctl.engine.audience import (
    AudienceQuery,
    RunItems,
    build_queue,
    count_audience,
    message_id_for,
)
from campctl.errors import NotFound
from campctl.store.contacts import ContactRow, upsert_chunk


def people(db, now, n=10):
    rows = [
        ContactRow(i, f"p{i}", f"p{i}@x.com" if i % 5 else None, True, None, False,
                   {"n": i}, ["even"] if i % 2 == 0 else ["odd"],
                   ["promo"] if i in (2, 3) else None)
        for i in range(n)
    ]
    with db.atomic():
        upsert_chunk(db, rows, now=now)


def build(db, now, run_id, audience=None, *, channel="outbox", require_email=None,
          exclude_sent_of_run=None, **kw):
    args = {"message_type": "promo", "include_opted_out": False,
            "sample_key": f"run:{run_id}"}
    args.update(kw)
    query = AudienceQuery(audience or {"all": True}, **args)
    return build_queue(db, query, RunItems(run_id, channel, require_email=require_email,
                                           exclude_sent_of_run=exclude_sent_of_run), now=now)


def items(db, run_id):
    return [dict(r) for r in db.query(
        "SELECT q.message_id, c.external_id AS contact, q.status, q.channel, q.message_type "
        "FROM queue_items q JOIN contacts c ON c.id = q.contact_id WHERE run_id = ? "
        "ORDER BY q.contact_id", (run_id,))]


def test_build_inserts_once_with_deterministic_message_ids(db, now):
    people(db, now)
    run = new_run(db)
    assert build(db, now, run) == 8            # p2 and p3 opted out of promo
    assert build(db, now, run) == 0            # building again inserts nothing twice
    built = items(db, run)
    assert len(built) == 8
    assert {i["status"] for i in built} == {"queued"}
    assert {i["channel"] for i in built} == {"outbox"} and built[0]["message_type"] == "promo"
    pks = [r[0] for r in db.query(
        "SELECT contact_id FROM queue_items WHERE run_id = ? ORDER BY contact_id", (run,))]
    assert [i["message_id"] for i in built] == [message_id_for(run, pk) for pk in pks]
    assert "p2" not in {i["contact"] for i in built}


def test_opt_out_override_and_new_contacts_join_on_rebuild(db, now):
    people(db, now)
    run = new_run(db)
    assert build(db, now, run, include_opted_out=True) == 10
    other = new_run(db)
    assert build(db, now, other, audience={"all": True, "include_opted_out": True}) == 10
    third = new_run(db)
    assert build(db, now, third, message_type=None) == 10   # no type: opt-outs do not apply
    with db.atomic():
        upsert_chunk(db, [ContactRow(1, "late", None, False, None, False, {}, None, None)],
                     now=now)
    assert build(db, now, run, include_opted_out=True) == 1


def test_chunked_build_equals_one_statement(db, now):
    from campctl.store.queue import insert_run_items

    people(db, now, n=50)
    run = new_run(db)
    inserted = insert_run_items(db, AudienceQuery({"groups": ["even"]}),
                                RunItems(run, "outbox"), now=now, chunk_ids=7)
    assert inserted == 25 == count_audience(db, {"groups": ["even"]}, now=now)


def test_smtp_channels_need_an_email_others_do_not(db, now):
    people(db, now)
    store_channel(db, "mail", {"type": "smtp", "host": "localhost"})
    store_channel(db, "hook", {"type": "webhook", "url": "http://127.0.0.1:1/"})
    assert build(db, now, new_run(db), channel="mail", message_type=None) == 8   # p0, p5: no email
    assert build(db, now, new_run(db), channel="hook", message_type=None) == 10
    assert build(db, now, new_run(db), channel="outbox", message_type=None,
                 require_email=True) == 8


def test_restart_skips_contacts_sent_in_the_replaced_run(db, now):
    people(db, now)
    first = new_run(db)
    build(db, now, first, message_type=None)
    with db.atomic():
        db.execute("UPDATE queue_items SET status = 'sent' WHERE run_id = ? AND contact_id IN "
                   "(SELECT id FROM contacts WHERE external_id IN ('p1', 'p4'))", (first,))
        db.execute("UPDATE queue_items SET status = 'failed' WHERE run_id = ? AND contact_id = "
                   "(SELECT id FROM contacts WHERE external_id = 'p6')", (first,))
    second = new_run(db)
    assert build(db, now, second, message_type=None, exclude_sent_of_run=first) == 8
    assert {"p1", "p4"}.isdisjoint(i["contact"] for i in items(db, second))
    assert "p6" in {i["contact"] for i in items(db, second)}


def test_limit_percent_build_is_repeatable_for_a_sample_key(db, now):
    people(db, now, n=400)
    store_segment(db, "some", {"rules": [{"attr": "n", "op": "gte", "value": 0}],
                               "limit_percent": 50})
    a, b = new_run(db), new_run(db)
    build(db, now, a, audience={"segment": "some"}, sample_key="spring/main", message_type=None)
    build(db, now, b, audience={"segment": "some"}, sample_key="spring/main", message_type=None)
    chosen_a = {i["contact"] for i in items(db, a)}
    assert chosen_a == {i["contact"] for i in items(db, b)}
    assert 150 < len(chosen_a) < 250
    c = new_run(db)
    build(db, now, c, audience={"segment": "some"}, sample_key="other", message_type=None)
    assert {i["contact"] for i in items(db, c)} != chosen_a


def test_unknown_segment_is_not_found(db, now):
    people(db, now)
    with pytest.raises(NotFound):
        build(db, now, new_run(db), audience={"segment": "missing"})


def test_empty_contacts_build_nothing(db, now):
    assert build(db, now, new_run(db)) == 0
