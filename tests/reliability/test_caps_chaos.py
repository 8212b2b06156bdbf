"""Frequency caps under concurrent ticks and SIGKILLs, counted at real receivers, on both stores
at CI size (full size: `python3 tests/reliability/full_size.py --only caps [--store URL]`).

The workload and its figures are in caps_workload.py.
"""

from __future__ import annotations

from datetime import timedelta

import caps_workload
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_caps_hold_per_contact_under_concurrent_ticks_and_sigkills(tmp_path, store, request):
    url = request.getfixturevalue("pg_state") if store == "pg" else None
    f = caps_workload.measure(tmp_path, size="small", seed=0, store=url)
    # Kills land where the rounds are (a drawn delay may outlast a quick tick): at least one.
    assert f["kills"] >= 1 and f["nonzero_exits_unkilled"] == 0, f
    assert f["integrity_failures"] == 0, f
    # Never more than `max` messages of a cap's types per contact in any rolling `per`, each
    # message id counted once at its first arrival.
    assert f["over_cap"] == 0, f
    # Nothing lost: sent and arrived, dropped (cancelled `capped`) by the drop cap and never
    # handed over, or still deferred; both policies did something.
    assert f["lost"] == 0 and f["arrived_not_sent"] == 0 and f["unknown_arrivals"] == 0, f
    assert f["dropped"] > 0 and f["deferred_then_sent"] > 0, f
    assert f["capped_counted_by_runs"] >= f["dropped"], f
    # Never a second key for one recipient; a key again only after a kill left it in doubt.
    assert f["second_key_for_recipient"] == 0 and f["resent_unexplained"] == 0, f
    # The highest priority takes a contact's freed slot first.
    assert f["priority_inversions"] == 0 and f["priority_contests"] > 0, f
    assert f["ok"] is True, f


IN_DOUBT = """\
kind: Channel
name: hook
type: webhook
url: {url}
connections: 1
---
kind: FrequencyCap
name: news
max: 1
per: 6h
message_types: [newsletter]
policy: {policy}
""" + "".join(f"""\
---
kind: Campaign
name: {name}
timezone: UTC
channel: hook
message_type: newsletter
priority: {priority}
audience: {{{{all: true}}}}
message: {{{{subject: "s", body: "b"}}}}
type: one-off
schedule: {{{{queue: immediately, send: after_queue}}}}
""" for name, priority in (("low", 10), ("high", 90)))


@pytest.mark.parametrize(("store", "policy"), [
    ("sqlite", "drop"), ("sqlite", "defer"),
    pytest.param("pg", "drop", marks=pytest.mark.pg)])
def test_a_message_left_in_doubt_by_a_kill_keeps_its_slot_and_no_cap_holds_it(
        tmp_path, store, policy, request):
    """`low` reaches the receiver and its tick is killed before recording it; `high` (higher
    priority) becomes due meanwhile. Once the claim has expired, `low` goes again with its key
    (it may have reached the contact: no cap holds it) and keeps the contact's one slot: `high`
    is capped, not sent beside it."""
    import random
    import signal
    import subprocess
    from collections import Counter

    from chaos_workload import T0
    from workload_support import (
        Killer,
        campctl_argv,
        clean_env,
        drop_state,
        killing_receivers,
        query,
        run_campctl,
        run_in_process,
        state_in,
    )

    state = state_in(request.getfixturevalue("pg_state") if store == "pg" else tmp_path, "doubt")
    killer = Killer(random.Random(0))
    _, hook = killing_receivers(killer)
    with hook:
        (tmp_path / "c.csv").write_text("id,email\nc1,c1@example.org\n")
        (tmp_path / "d.yaml").write_text(IN_DOUBT.format(url=hook.url, policy=policy))
        for args in (("init",), ("contacts", "import", str(tmp_path / "c.csv")),
                     ("apply", str(tmp_path / "d.yaml")), ("submit", "campaign", "low"),
                     ("approve", "campaign", "low", "--as", "approver"),
                     ("start", "campaign", "low")):
            run_in_process(state, T0, *args, user="caps")
        proc = subprocess.Popen(campctl_argv(state, T0, "tick"), env=clean_env("caps"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killer.arm([proc], 1)
        assert proc.wait(timeout=300) == -signal.SIGKILL
        for args in (("submit", "campaign", "high"),
                     ("approve", "campaign", "high", "--as", "approver"),
                     ("start", "campaign", "high")):
            run_in_process(state, T0, *args, user="caps")
        run_campctl(state, T0 + timedelta(minutes=10), "tick", env=clean_env("caps"))
        keys = Counter(hook.keys())
    rows = dict(query(state, "SELECT r.campaign, q.status || ':' || coalesce(q.last_error, '')"
                             " FROM queue_items q JOIN runs r ON r.id = q.run_id"))
    assert rows["low"] == "sent:", rows
    assert rows["high"] == ("cancelled:capped" if policy == "drop" else "queued:"), rows
    assert sorted(keys.values()) == [2], keys  # low twice (same key), high never
    drop_state(state)
