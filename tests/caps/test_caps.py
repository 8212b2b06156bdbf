"""Frequency caps through the CLI, on both stores: the kind and its validation, defer and drop,
priority for a contact's last slots across campaigns, a scenario step and channels, counts,
the log, `why` and `simulate`; without a cap nothing changes."""

from __future__ import annotations

import textwrap

from caps_support import T0, campaign, cap

LATER = "2027-03-01T10:00:00Z"
NEXT_DAY = "2027-03-02T09:01:00Z"


def capped_log(caps) -> list[dict]:
    return caps.rows("SELECT run_id, scenario, details FROM exec_log"
                     " WHERE event = 'Messages Capped' ORDER BY id")


def test_bad_values_are_validation_errors_with_line_and_column(caps, write_yaml):
    path = write_yaml("bad.yaml", textwrap.dedent("""\
        kind: FrequencyCap
        name: marketing
        max: 0
        per: soon
        message_types: [promotional, promotional]
        policy: later
        ---
        """) + campaign("sale", priority=101) + "---\n" + campaign("news").replace(
        "type: one-off", "type: one-off\npriority: high"))
    result = caps.cli("validate", str(path), "-o", "json")
    assert result.exit_code == 1, result
    found = {(e["line"], e["col"], e["code"]) for e in result.json["errors"]}
    assert found == {(3, 6, "CC109"), (4, 6, "CC302"), (5, 30, "CC214"), (6, 9, "CC108"),
                     (16, 11, "CC109"), (21, 11, "CC106")}, result.json


def test_get_and_describe_a_frequency_cap(caps):
    caps.setup(1, cap(max=2, policy="drop"), campaign("sale", priority=80))
    listed = caps.ok("get", "frequencycaps", "-o", "json").json
    assert listed == [{"name": "marketing", "max": 2, "per": "1d",
                       "message_types": ["promotional"], "policy": "drop", "version": 1}]
    described = caps.ok("describe", "frequencycap", "marketing", "-o", "json").json
    assert (described["kind"], described["max"], described["spec"]["policy"]) == (
        "frequencycap", 2, "drop")
    assert "marketing" in caps.ok("get", "frequencycaps").stdout
    assert caps.ok("get", "campaigns", "sale", "-o", "json").json["priority"] == 80


def test_defer_sends_the_capped_message_when_the_cap_frees(caps):
    caps.setup(3, cap(), campaign("sale", priority=80), campaign("news", priority=20))
    caps.start("news", "sale")  # news is started first: priority, not order, decides
    caps.tick(T0)
    assert caps.sent() == [("sale", "c0"), ("sale", "c1"), ("sale", "c2")]
    caps.tick(LATER)
    assert len(caps.sent()) == 3  # still within the day
    runs = caps.runs()
    assert (runs["news"]["status"], runs["news"]["queued"], runs["news"]["capped"]) == (
        "sending", 3, 3)
    assert runs["sale"]["capped"] == 0
    log = capped_log(caps)
    assert len(log) >= 1 and {r["run_id"] for r in log} == {runs["news"]["id"]}
    assert log[0]["details"].startswith("3 messages capped by frequency cap marketing"), log
    caps.tick(NEXT_DAY)
    assert [c for what, c in caps.sent() if what == "news"] == ["c0", "c1", "c2"]
    run = caps.ok("describe", "run", str(runs["news"]["id"]), "-o", "json", now=NEXT_DAY).json
    assert (run["status"], run["sent"], run["capped"]) == ("completed", 3, 3)


def test_drop_cancels_the_capped_messages_with_the_reason_capped(caps):
    caps.setup(2, cap(policy="drop"), campaign("sale", priority=80), campaign("news"))
    caps.start("sale", "news")
    caps.tick(T0)
    caps.tick(NEXT_DAY)
    assert caps.sent() == [("sale", "c0"), ("sale", "c1")]
    runs = caps.runs(NEXT_DAY)
    news = runs["news"]
    assert (news["status"], news["cancelled"], news["capped"], news["sent"]) == (
        "completed", 2, 2, 0)
    assert caps.rows("SELECT DISTINCT last_error, capped FROM queue_items"
                     " WHERE status = 'cancelled'") == [{"last_error": "capped",
                                                         "capped": "marketing"}]
    (entry,) = capped_log(caps)
    assert entry["run_id"] == news["id"] and "dropped" in entry["details"]


def test_priority_decides_the_last_slots_across_campaigns_a_scenario_and_channels(caps):
    outbox = "kind: Channel\nname: {}\ntype: outbox\n"
    scenario = textwrap.dedent("""\
        kind: Scenario
        name: welcome
        launch: {type: manual}
        steps:
          - id: hello
            send: {channel: zzz, message_type: promotional, subject: Hi, body: Hello,
                   priority: 90}
        """)
    caps.setup(2, outbox.format("aaa"), outbox.format("zzz"), cap(max=2),
               campaign("low", priority=10, channel="aaa"), campaign("mid"), scenario)
    caps.ok("activate", "scenario", "welcome")
    caps.ok("start", "scenario", "welcome", "--all", "--yes")
    caps.start("low", "mid")
    caps.tick(T0)  # channel aaa (low) is delivered first, yet the two others get the slots
    assert caps.sent() == [("mid", "c0"), ("mid", "c1"), ("welcome/hello", "c0"),
                           ("welcome/hello", "c1")]
    caps.tick(NEXT_DAY)
    assert [c for what, c in caps.sent() if what == "low"] == ["c0", "c1"]
    assert caps.runs(NEXT_DAY)["low"]["capped"] == 2


def test_a_lower_priority_scenario_step_is_capped_and_counted_per_step(caps):
    scenario = textwrap.dedent("""\
        kind: Scenario
        name: welcome
        launch: {type: manual}
        steps:
          - id: hello
            send: {message_type: promotional, subject: Hi, body: Hello, priority: 5}
        """)
    caps.setup(1, cap(policy="drop"), campaign("sale"), scenario)
    caps.ok("activate", "scenario", "welcome")
    caps.ok("start", "scenario", "welcome", "--all", "--yes")
    caps.start("sale")
    caps.tick(T0)
    assert caps.sent() == [("sale", "c0")]
    steps = {s["step"]: s for s in caps.ok("describe", "scenario", "welcome", "-o",
                                           "json").json["steps"]}
    assert (steps["hello"]["capped"], steps["hello"]["sent"]) == (1, 0)
    (entry,) = capped_log(caps)
    assert entry["scenario"] == "welcome" and entry["details"].startswith("step hello: 1 ")


def test_without_a_cap_nothing_changes(caps):
    caps.setup(2, campaign("sale", priority=80), campaign("news", priority=20))
    caps.start("sale", "news")
    caps.tick(T0)
    assert len(caps.sent()) == 4
    assert {r["capped"] for r in caps.runs().values()} == {0}
    assert capped_log(caps) == []
    # A cap on another message type holds nothing either.
    caps.ok("apply", str(caps.write_yaml("cap.yaml", cap(types="[transactional]"))))
    caps.ok("revise", "campaign", "news")
    caps.start("news", now=LATER)
    caps.tick(LATER)
    assert len(caps.sent()) == 6 and capped_log(caps) == []


def test_why_shows_the_cap_and_what_it_holds(caps):
    caps.setup(1, cap(), campaign("sale", priority=80), campaign("news"))
    caps.start("sale", "news")
    caps.tick(T0)
    caps.tick(LATER)  # the recheck: now held until the day has passed
    report = caps.ok("why", "c0", "-o", "json", now=LATER).json
    (shown,) = report["caps"]
    assert (shown["name"], shown["counted"], shown["sent"], shown["slots_left"]) == (
        "marketing", 1, 1, 0)
    assert shown["next_slot_at"] == "2027-03-02T09:00:00Z"
    assert [(h["status"], h["until"]) for h in shown["held"]] == [
        ("queued", "2027-03-02T09:00:00Z")]
    news = next(o for o in report["objects"] if o["name"] == "news")
    assert news["verdict"] == "waiting"
    assert "held by frequency cap marketing" in news["reason"], news
    table = caps.ok("why", "c0", now=LATER).stdout
    assert "frequency cap marketing" in table and "1 counted" in table


def test_simulate_counts_the_messages_held_by_caps(caps):
    caps.setup(2, cap(), campaign("sale", priority=80), campaign("news"))
    caps.start("sale", "news")
    report = caps.ok("simulate", "--days", "2", "-o", "json").json
    assert (report["totals"]["sent"], report["totals"]["capped"]) == (4, 2)
    by_object = {o["object"]: o for o in report["objects"]}
    assert (by_object["campaign/news"]["capped"], by_object["campaign/sale"]["capped"]) == (2, 0)
    assert [d["capped"] for d in report["days"]] == [2, 0, 0]  # 09:00 + 2 days: three days
    assert caps.rows("SELECT count(*) AS n FROM queue_items") == [{"n": 0}]  # a copy ran

