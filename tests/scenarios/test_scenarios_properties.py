"""Properties of capture and re-entry under random capture times: the re-entry invariants hold,
and a tick repeated at the same time changes nothing."""

from __future__ import annotations

import sqlite3
from datetime import timedelta as td

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_support import Scenarios, at

DRIP = """\
kind: Scenario
name: drip
reentry: {mode}
launch: {{type: event, event: poke}}
steps:
  - {{id: a, send: {{subject: "A", body: "x"}}}}
  - {{id: w, wait: 1d}}
  - {{id: b, send: {{subject: "B", body: "y"}}}}
"""


def _dump(state):
    conn = sqlite3.connect(state)
    try:
        return [conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("scenario_profiles", "queue_items", "occurrences", "event_cursors")]
    finally:
        conn.close()


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["once", "after_exit", "restart", "parallel"]),
       pokes=st.lists(st.tuples(st.sampled_from(["ann", "bob"]), st.integers(0, 96)),
                      min_size=1, max_size=6))
def test_reentry_invariants(cli, tmp_path_factory, write_yaml, mode, pokes):
    state = tmp_path_factory.mktemp("prop") / "state.db"

    def run(*args, input=None):
        return cli("--state", str(state), *args, input=input)

    def rows(sql, params=()):
        conn = sqlite3.connect(state)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    scn = Scenarios(run, state, rows, write_yaml)
    scn.contacts({"id": "ann"}, {"id": "bob"})
    scn.apply(DRIP.format(mode=mode), now=at(-td(hours=1)))
    scn.activate("drip", now=at(-td(hours=1)))
    hours = sorted({h for _, h in pokes} | {h + 25 for _, h in pokes})
    for hour in hours:
        for contact, when in pokes:
            if when == hour:
                scn.event("poke", contact, at(td(hours=hour)))
        scn.tick(at(td(hours=hour)))
        before = _dump(state)
        scn.tick(at(td(hours=hour)))
        assert _dump(state) == before
        inside = rows("SELECT contact_id, count(*) AS n FROM scenario_profiles "
                      "WHERE status IN ('active', 'waiting') GROUP BY contact_id")
        if mode != "parallel":
            assert all(r["n"] == 1 for r in inside)
        assert rows("SELECT count(*) AS n FROM scenario_profiles WHERE status = 'active'")[0][
            "n"] == 0  # after a tick every profile waits or has ended
    captures = {c: sum(1 for p in pokes if p[0] == c) for c in ("ann", "bob")}
    per_contact = {r["external_id"]: r["n"] for r in rows(
        "SELECT c.external_id, count(p.id) AS n FROM contacts c LEFT JOIN scenario_profiles p "
        "ON p.contact_id = c.id GROUP BY c.id")}
    for contact, n in captures.items():
        if mode == "once":
            assert per_contact[contact] == min(n, 1)
        elif mode == "parallel":
            assert per_contact[contact] == n  # every event is a capture
        else:
            assert 1 <= per_contact[contact] <= n if n else per_contact[contact] == 0
    ids = [r["message_id"] for r in rows("SELECT message_id FROM queue_items")]
    assert len(ids) == len(set(ids))
