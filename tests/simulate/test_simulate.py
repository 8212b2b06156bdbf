"""`campctl simulate --days N` (issue 16 item 8), on both stores.

The source state is never written (byte-identical on SQLite, every row identical on PostgreSQL);
no connection leaves for a channel (a webhook at a 127.0.0.1 listener receives nothing); and the
simulation's result equals what `campctl tick --now T` run every minute over the same period
produces on a separate copy.
"""

from __future__ import annotations

import hashlib
import io
import socket
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from store_support import is_pg, query_rows

from campctl.__main__ import main
from campctl.engine import simulate as engine
from campctl.store.copy import copy_state
from campctl.store.db import open_state
from campctl.store.location import SqlitePath, parse_state
from campctl.store.schema_pg import PG_TABLES
from campctl.timeutil import iso_z, parse_instant

START = "2027-03-01T09:00:00Z"


def ok(result):
    assert result.exit_code == 0, result
    return result


def arrange(cli, write_yaml, tmp_path, *, channel: str) -> None:
    """Three contacts; a daily campaign with a window through `hook`, a one-off through the
    built-in outbox, and a scenario whose wait crosses the period."""
    write_yaml("defs.yaml", channel + textwrap.dedent("""
        ---
        kind: Campaign
        name: daily
        timezone: Europe/Paris
        closes_at: 2027-06-30T23:59
        message_type: promotional
        channel: hook
        audience: {all: true}
        message:
          subject: "Hello {{ first_name }}"
          body: "Hi."
        type: date-triggered
        schedule:
          start: {at: 2027-03-01T08:00}
          cron: "0 7 * * *"
          until: 2027-05-31T23:59
          window: "09:00-18:00"
        ---
        kind: Campaign
        name: promo
        timezone: Europe/Paris
        closes_at: 2027-06-30T23:59
        message_type: promotional
        audience: {all: true}
        message:
          subject: "Promo"
          body: "Buy."
        type: one-off
        schedule:
          send: {at: 2027-03-02T10:00}
        """))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("id,email,first_name\nc1,c1@x.org,A\nc2,c2@x.org,B\nc3,c3@x.org,C\n")
    ok(cli("init"))
    ok(cli("apply", str(write_yaml.folder)))
    ok(cli("contacts", "import", str(contacts)))
    for name in ("daily", "promo"):
        for verb in ("submit", "approve", "start"):
            ok(cli(verb, "campaign", name))


OUTBOX = "kind: Channel\nname: hook\ntype: outbox\nrate: 2/h\n"


def snapshot(state) -> object:
    """The source as bytes (SQLite) or as every row of every table (PostgreSQL)."""
    if not is_pg(state):
        return hashlib.sha256(Path(state).read_bytes()).hexdigest()
    return {t: sorted(repr(sorted(r.items())) for r in query_rows(state, f"SELECT * FROM {t}"))
            for t in PG_TABLES}


def test_simulate_writes_nothing_and_reports_per_day_object_and_contact(
        cli, state, write_yaml, tmp_path):
    arrange(cli, write_yaml, tmp_path, channel=OUTBOX)
    before = snapshot(state)
    data = ok(cli("--now", START, "simulate", "--days", "3", "-o", "json")).json
    assert snapshot(state) == before
    assert data["from"] == START and data["until"] == "2027-03-04T09:00:00Z"
    assert data["timezone"] == "Europe/Paris"  # the zone every object shares
    assert [d["day"] for d in data["days"]] == [
        "2027-03-01", "2027-03-02", "2027-03-03", "2027-03-04"]
    objects = {o["object"]: o for o in data["objects"]}
    assert objects["campaign/promo"]["sent"] == 3 and objects["campaign/promo"]["fired"] == 1
    daily = objects["campaign/daily"]
    assert daily["fired"] == 3 and daily["built"] == 9
    # 2/h through `hook`: each morning's three messages wait, one of them also for the rate
    assert daily["held_window"] == 9 and daily["held_rate"] == 3
    assert data["totals"]["sent"] == sum(d["sent"] for d in data["days"])
    assert sum(h["sent"] for h in data["hourly"]) == data["totals"]["sent"]
    # On 2 March everyone gets the promo and the daily message
    assert data["contacts_over_max"] == 3
    assert {(o["day"], o["contact"], o["messages"]) for o in data["over_max"]} == {
        ("2027-03-02", c, 2) for c in ("c1", "c2", "c3")}
    wide = ok(cli("--now", START, "simulate", "--days", "3", "--max-per-day", "2",
                  "-o", "json")).json
    assert wide["contacts_over_max"] == 0
    table = ok(cli("--now", START, "simulate", "--days", "3"))
    assert "campaign/daily" in table.stdout and "messages per hour" in table.stdout
    assert "3 contact(s) would get more than 1 message(s) in one day" in table.stdout
    assert snapshot(state) == before


@pytest.mark.parametrize("days", ["0", "367", "-1"])
def test_days_out_of_bounds_is_a_usage_error(cli, state, days):
    ok(cli("init"))
    result = cli("simulate", "--days", days)
    assert result.exit_code == 2, result
    assert "error: --days must be from 1 to 366" in result.stderr


def test_a_bad_timezone_is_a_usage_error(cli, state):
    ok(cli("init"))
    result = cli("simulate", "--timezone", "Mars/Olympus")
    assert result.exit_code == 2 and "error: --timezone" in result.stderr, result


def test_nothing_reaches_a_real_receiver(cli, state, write_yaml, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    try:
        port = listener.getsockname()[1]
        arrange(cli, write_yaml, tmp_path, channel=(
            f"kind: Channel\nname: hook\ntype: webhook\nurl: http://127.0.0.1:{port}/in\n"
            "timeout: 2\n"))
        before = snapshot(state)
        data = ok(cli("--now", START, "simulate", "--days", "2", "-o", "json")).json
        assert data["channels_rerouted"] == ["hook"]
        assert {o["object"]: o["sent"] for o in data["objects"]}["campaign/daily"] == 6
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
        assert snapshot(state) == before
    finally:
        listener.close()


def _table(path: Path, sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in query_rows(path, sql)]


def _outcome(path: Path) -> dict[str, list[tuple]]:
    return {
        "occurrences": _table(path, "SELECT kind, name, scheduled_at, status, reason, created_at"
                              " FROM occurrences ORDER BY id"),
        "runs": _table(path, "SELECT id, campaign, status, built_at, finished_at FROM runs"
                       " ORDER BY id"),
        "items": _table(path, "SELECT message_id, status, created_at, sent_at, last_error"
                        " FROM queue_items ORDER BY id"),
        "outbox": _table(path, "SELECT message_id, contact, subject, sent_at FROM outbox"
                         " ORDER BY message_id"),
    }


def test_the_simulation_equals_campctl_tick_every_minute_on_a_copy(
        cli, state, write_yaml, tmp_path):
    arrange(cli, write_yaml, tmp_path, channel=OUTBOX)
    start = parse_instant(START)
    simulated, ticked = tmp_path / "simulated.db", tmp_path / "ticked.db"
    for path in (simulated, ticked):
        copy_state(parse_state(str(state)), SqlitePath(path), now_text=START)
    db = open_state(SqlitePath(simulated), create=False)
    try:
        result = engine.simulate(db, start=start, days=2, environ={}, timezone="Europe/Paris")
    finally:
        db.close()
    at = start
    end = start + timedelta(days=2)
    sink = io.StringIO()
    while at < end:  # what cron does: `campctl tick` every minute (fast path included)
        with redirect_stdout(sink), redirect_stderr(sink):
            assert main(["--state", str(ticked), "--now", iso_z(at) or "", "tick"]) == 0
        at += timedelta(minutes=1)
    assert _outcome(simulated) == _outcome(ticked)
    sent = query_rows(ticked, "SELECT count(*) AS n FROM queue_items WHERE status = 'sent'"
                              " AND sent_at >= ?", (START,))[0]["n"]
    assert result.total.values["sent"] == sent > 0
    assert result.ticks < 2 * 24 * 60 // 4  # minutes with nothing to do were jumped over
    # and the command's numbers are those of the engine's run on a copy
    data = ok(cli("--now", START, "simulate", "--days", "2", "--timezone", "Europe/Paris",
                  "-o", "json")).json
    assert data == result.as_json()
    assert isinstance(datetime.fromisoformat(data["hourly"][0]["hour"]), datetime)
