"""Two ticks at once (cron overlap, or a tick beside a daemon) never capture or send twice."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta as td

from scenario_support import at


def test_parallel_ticks_send_each_scenario_message_once(scn, state):
    scn.contacts(*({"id": f"c{i:03d}", "groups": ["g"]} for i in range(90)))
    scn.apply("""\
        kind: Scenario
        name: duo
        reentry: once
        launch: {type: event, event: go}
        steps:
          - {id: one, send: {subject: "1", body: "first"}}
          - {id: pause, wait: 1h}
          - {id: two, send: {subject: "2", body: "second"}}
        """)
    scn.activate("duo")
    scn.tick(at())
    for i in range(0, 90, 3):
        scn.event("go", f"c{i:03d}", at(td(minutes=1)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    for moment in (at(td(minutes=2)), at(td(hours=1, minutes=2))):
        procs = [subprocess.Popen([sys.executable, "-m", "campctl", "--state", str(state),
                                   "--now", moment, "tick"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(3)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    per_step = scn.rows("SELECT step, count(*) AS n, count(DISTINCT contact) AS contacts "
                        "FROM outbox WHERE scenario = 'duo' GROUP BY step ORDER BY step")
    assert per_step == [{"step": "one", "n": 30, "contacts": 30},
                        {"step": "two", "n": 30, "contacts": 30}]
    assert scn.rows("SELECT count(*) AS n FROM scenario_profiles")[0]["n"] == 30
    assert {p["status"] for p in scn.profiles("duo")} == {"completed"}
