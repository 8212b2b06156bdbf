"""`stats scenario --from/--to`: statistics of a period with absolute dates (default: the last
7 days)."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

DEFS = """\
kind: Scenario
name: onboarding
reentry: parallel
launch: {type: manual}
steps:
  - id: welcome
    send: {subject: "Hi", body: "Welcome"}
"""


def _launch(scn, group: str, when: str):
    scn.ok("start", "scenario", "onboarding", "--group", group, "--yes", "--now", when)
    scn.tick(when)


def _stats(scn, *args: str, now: str):
    return scn.ok("stats", "scenario", "onboarding", *args, "-o", "json", "--now", now).json


def test_stats_of_an_absolute_period(scn):
    scn.contacts({"id": "a", "groups": ["g1"]}, {"id": "b", "groups": ["g2"]},
                 {"id": "c", "groups": ["g2"]}, {"id": "d", "groups": ["g3"]})
    scn.apply(DEFS)
    scn.activate("onboarding")
    _launch(scn, "g1", at())                     # 2027-03-01: one entry
    _launch(scn, "g2", at(td(days=3)))           # 2027-03-04: two entries
    _launch(scn, "g3", at(td(days=20)))          # 2027-03-21: one entry
    now = at(td(days=21))

    march_4 = _stats(scn, "--from", "2027-03-04", "--to", "2027-03-04", now=now)
    assert (march_4["from"], march_4["to"]) == ("2027-03-04T00:00:00Z", "2027-03-04T23:59:59Z")
    assert march_4["entered"] == 2 == march_4["completed"]
    first_days = _stats(scn, "--from", "2027-03-01", "--to", "2027-03-05T00:00:00Z", now=now)
    assert first_days["entered"] == 3
    # --from alone runs to now; the default is the last 7 days.
    assert _stats(scn, "--from", "2027-03-02", now=now)["entered"] == 3
    default = _stats(scn, now=now)
    assert default["entered"] == 1 and default["to"] == now
    assert default["from"] == at(td(days=14))
    # --to alone: the 7 days before it.
    assert _stats(scn, "--to", "2027-03-07", now=now)["entered"] == 3


def test_bad_periods_are_usage_errors(scn):
    scn.contacts({"id": "a"})
    scn.apply(DEFS)
    for args in (["--from", "2027-03-05", "--to", "2027-03-01"], ["--from", "yesterday"],
                 ["--since", "7d", "--from", "2027-03-01"]):
        result = scn.cli("stats", "scenario", "onboarding", *args, "--now", at())
        assert result.exit_code == 2, (args, result)
        assert result.stderr.startswith("error:")
