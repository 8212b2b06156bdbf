"""SIGKILL chaos over a mixed workload at CI size (full size: tests/reliability/full_size.py).

The workload SIGKILLs ticks at seeded random moments; the focused tests below place the kill
exactly between a hand-over and the commit that records it: the receiving server kills the tick
the moment the first message arrives.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from datetime import timedelta

import chaos_workload
import pytest
from chaos_workload import T0, _cmd, _env, _key, _must, _query, _tune_server
from receivers import SmtpReceiver, WebhookReceiver
from workload_support import drop_state, integrity_ok, run_in_process, state_in


def test_sigkill_chaos_over_a_mixed_workload_at_small_size(tmp_path):
    figures = chaos_workload.measure(tmp_path, size="small")
    assert figures["kills"] >= 6, figures
    assert figures["integrity_failures"] == 0, figures
    assert figures["partial_queues"] == 0, figures
    assert figures["lost"] == 0 and figures["items_not_sent"] == 0, figures
    assert figures["duplicates"] == 0 and figures["unknown_arrivals"] == 0, figures
    # Any key seen twice went again only because the tick that handed it over was killed.
    assert figures["resent_after_kill"] == figures["resent_explained_by_kill"], figures
    # Each sent message is recorded before the next goes: one kill repeats at most one message.
    assert figures["max_resent_per_kill"] <= 1, figures
    assert figures["changes_without_history"] == 0, figures
    assert min(figures["messages_smtp"], figures["messages_webhook"],
               figures["messages_outbox"]) > 0, figures
    assert figures["hourly_runs"] >= 4 and figures["plan_instances"] >= 1, figures
    assert figures["ok"] is True, figures


class _KillingWebhook(WebhookReceiver):
    """Kills the tick (SIGKILL) as the first message arrives: after the hand-over, before the
    commit that records it."""

    victim: int | None = None

    def _add(self, key, info):
        super()._add(key, info)
        if self.victim is not None:
            os.kill(self.victim, signal.SIGKILL)
            self.victim = None


class _KillingSmtp(SmtpReceiver):
    victim: int | None = None

    def _add(self, key, info):
        super()._add(key, info)
        if self.victim is not None:
            os.kill(self.victim, signal.SIGKILL)
            self.victim = None


CAMPAIGN = """\
kind: Channel
name: out
{channel}
---
kind: Campaign
name: once
timezone: UTC
channel: out
audience: {{all: true}}
message: {{subject: "Hi {{{{ first_name }}}}", body: "b"}}
type: one-off
schedule: {{queue: immediately, send: after_queue}}
"""


@pytest.mark.parametrize("store", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
@pytest.mark.parametrize("kind", ["webhook", "smtp"])
def test_a_kill_between_hand_over_and_its_commit_sends_that_message_again_with_its_key(
        tmp_path, kind, store, request):
    receiver = _KillingWebhook() if kind == "webhook" else _KillingSmtp()
    state = state_in(request.getfixturevalue("pg_state") if store == "pg" else tmp_path, "kill")
    with receiver:
        if kind == "webhook":
            _tune_server(receiver)
            channel = f"type: webhook\nurl: {receiver.url}\nconnections: 1"
        else:
            channel = f"type: smtp\nhost: 127.0.0.1\nport: {receiver.port}\nstarttls: false\n" \
                      "from: t@example.org\nconnections: 1"
        (tmp_path / "c.csv").write_text("id,email,first_name\n" + "".join(
            f"c{i},c{i}@example.org,N{i}\n" for i in range(5)))
        (tmp_path / "d.yaml").write_text(CAMPAIGN.format(channel=channel))
        for args in (("init",), ("contacts", "import", str(tmp_path / "c.csv")),
                     ("apply", str(tmp_path / "d.yaml")), ("submit", "campaign", "once"),
                     ("approve", "campaign", "once", "--as", "approver"),
                     ("start", "campaign", "once")):
            run_in_process(state, T0, *args, user="chaos")  # set-up: no process start each
        now = T0 + timedelta(minutes=1)
        proc = subprocess.Popen(_cmd(state, now, "tick"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        receiver.victim = proc.pid
        proc.wait(timeout=300)
        assert proc.returncode == -signal.SIGKILL
        first = [_key(k) for k in receiver.keys()]
        assert len(first) == 1
        assert integrity_ok(state)  # SQLite's integrity_check (PostgreSQL: its WAL)
        # Nothing recorded as sent; the claim holds the batch until its lease ends.
        assert _query(state, "SELECT count(*) FROM queue_items WHERE status = 'sent'") == [(0,)]
        _must(state, now, "tick")
        assert [_key(k) for k in receiver.keys()] == first  # still leased: nothing again yet
        _must(state, now + chaos_workload_lease() + timedelta(minutes=1), "tick")
        keys = Counter(_key(k) for k in receiver.keys())
    assert sum(keys.values()) == 6 and len(keys) == 5
    assert keys[first[0]] == 2  # that one message again, with the same key
    assert {n for k, n in keys.items() if k != first[0]} == {1}
    assert _query(state, "SELECT status, count(*) FROM queue_items GROUP BY status") == \
        [("sent", 5)]
    drop_state(state)


def chaos_workload_lease() -> timedelta:
    from campctl.engine.delivery import LEASE

    return LEASE


def test_the_queue_and_history_checks_catch_what_they_look_for(tmp_path):
    """The checks of the workload fail on a state that breaks them (so they can fail)."""
    import sqlite3

    state = tmp_path / "audit.db"
    (tmp_path / "c.csv").write_text("id,email,first_name,groups\n" + "".join(
        f"c{i},c{i}@example.org,N{i},vip\n" for i in range(3)))
    (tmp_path / "d.yaml").write_text(CAMPAIGN.format(channel="type: outbox") + """\
---
kind: Scenario
name: care
reentry: parallel
launch: {type: manual}
steps:
  - id: hi
    send: {subject: "Hi", body: "b"}
""")
    for args in (("init",), ("contacts", "import", str(tmp_path / "c.csv")),
                 ("apply", str(tmp_path / "d.yaml")), ("submit", "campaign", "once"),
                 ("approve", "campaign", "once", "--as", "approver"),
                 ("start", "campaign", "once"), ("activate", "scenario", "care"),
                 ("start", "scenario", "care", "--all", "--yes"), ("tick",)):
        _must(state, T0, *args)
    _must(state, T0 + timedelta(minutes=1), "tick")
    assert chaos_workload.partial_queues(state, 3) == []
    count, problems, audited = chaos_workload.audit_history(state)
    assert (count, problems) == (0, [])
    assert audited == {"objects": 2, "runs": 1, "launches": 1}

    conn = sqlite3.connect(state)
    with conn:
        conn.execute("DELETE FROM exec_log WHERE event = 'Run Completed'")
        conn.execute("DELETE FROM history WHERE kind = 'launch' AND action = 'complete'")
        conn.execute("UPDATE objects SET status = 'stopped' WHERE name = 'once'")
        conn.execute("DELETE FROM queue_items WHERE id = (SELECT max(id) FROM queue_items"
                     " WHERE run_id IS NOT NULL)")
        conn.execute("INSERT INTO runs (campaign, stage, status, spec, created_at, updated_at)"
                     " VALUES ('once', 'main', 'building', '{}', 'x', 'x')")
        conn.execute("INSERT INTO queue_items (message_id, run_id, contact_id, channel,"
                     " created_at) VALUES ('m', last_insert_rowid(), 1, 'out', 'x')")
    conn.close()
    partial = chaos_workload.partial_queues(state, 3)
    assert any("built with 2 items, expected 3" in p for p in partial), partial
    assert any("left in status building" in p for p in partial), partial
    assert any("not built but has 1 items" in p for p in partial), partial
    count, problems, _ = chaos_workload.audit_history(state)
    text = "\n".join(problems)
    assert "Campaign/once is stopped, last history says approved" in text, text
    assert "is completed without any of ('Run Completed', 'Campaign Closed')" in text, text
    assert "launch 1 is completed, last history row is start" in text, text
    assert "committed in status building" in text and "no row for its creation" in text, text
