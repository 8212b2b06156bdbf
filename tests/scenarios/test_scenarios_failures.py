"""Failed scenario messages are visible: stats count them as errors, describe shows them per
step, and `campctl failures scenario` lists them with their reasons."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

JOURNEY = """\
kind: Scenario
name: welcome
launch: {type: event, event: joined}
steps:
  - id: hello
    send: {subject: "Hello", body: "Hi {{ first_name }}"}
  - id: bye
    send: {subject: "Bye", body: "bye"}
"""


def test_failed_messages_show_in_stats_describe_and_failures(scn):
    scn.contacts({"id": "ann", "first_name": "Ann"}, {"id": "bob"}, {"id": "cid"})
    scn.apply(JOURNEY)
    scn.activate("welcome")
    for contact in ("ann", "bob", "cid"):
        scn.event("joined", contact, at(td(minutes=1)))
    scn.tick(at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))

    stats = scn.stats("welcome", at(td(minutes=3)))
    assert (stats["errors"], stats["failed_messages"]) == (2, 2), stats
    steps = scn.ok("describe", "scenario", "welcome", "-o", "json").json["steps"]
    assert {s["step"]: (s["sent"], s["failed"]) for s in steps} == {"hello": (1, 2),
                                                                     "bye": (3, 0)}
    assert "2 failed" in scn.ok("describe", "scenario", "welcome").stdout

    failures = scn.ok("failures", "scenario", "welcome", "-o", "json").json
    assert sorted(f["contact"] for f in failures) == ["bob", "cid"]
    first = failures[0]
    assert set(first) >= {"message_id", "contact", "step", "attempts", "last_error", "failed_at"}
    assert first["step"] == "hello" and "first_name" in first["last_error"]
    assert first["failed_at"] == at(td(minutes=1))
    assert scn.ok("failures", "scenario", "welcome", "--step", "bye", "-o", "json").json == []
    assert len(scn.ok("failures", "scenario", "welcome", "--limit", "1", "-o", "json").json) == 1
    table = scn.ok("failures", "scenario", "welcome").stdout
    assert "bob" in table and "first_name" in table
    # An older period does not count them.
    assert scn.stats("welcome", at(td(days=9)), since="1d")["errors"] == 0


def test_failures_of_an_unknown_scenario_or_step_exit_3(scn):
    scn.apply(JOURNEY)
    assert scn.cli("failures", "scenario", "nope").exit_code == 3
    missing = scn.cli("failures", "scenario", "welcome", "--step", "nope")
    assert missing.exit_code == 3 and "hello, bye" in missing.stderr
    assert scn.cli("failures", "scenario", "welcome", "--limit", "-1").exit_code == 2
