"""Properties of capture and re-entry under random capture times: the re-entry invariants hold,
and a tick repeated at the same time changes nothing."""

from __future__ import annotations

import os
from datetime import timedelta as td

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_support import reset_pg
from scenario_support import Scenarios, at
from store_support import is_pg, open_rows, query_rows

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
    with open_rows(state) as rows:
        return [rows(f"SELECT * FROM {t} ORDER BY 1")
                for t in ("scenario_profiles", "queue_items", "occurrences", "event_cursors")]


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(["once", "after_exit", "restart", "parallel"]),
       pokes=st.lists(st.tuples(st.sampled_from(["ann", "bob"]), st.integers(0, 96)),
                      min_size=1, max_size=6))
def test_reentry_invariants(cli, state, tmp_path_factory, write_yaml, mode, pokes):
    # Every example starts from an empty state: a new file, or the test database reset.
    if is_pg(state):
        reset_pg(os.fspath(state))
    else:
        state = tmp_path_factory.mktemp("prop") / "state.db"

    def run(*args, input=None):
        return cli("--state", str(state), *args, input=input)

    def rows(sql, params=()):
        return query_rows(state, sql, params)

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
