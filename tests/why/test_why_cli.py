"""`campctl why CONTACT [KIND NAME]`: every verdict and reason, on both stores, via the CLI."""

from __future__ import annotations

import pytest
from store_support import dump_lines
from why_support import T0, campaign

T1 = "2027-03-01T09:05:00Z"

SEGMENTS = """kind: Segment
name: premium-fr
rules:
  - {group: vip}
  - {attr: plan, op: eq, value: premium}
  - {attr: score, op: gte, value: 60}
---
kind: Segment
name: either
match: any
rules:
  - {attr: plan, op: eq, value: premium}
  - {attr: score, op: gte, value: 60}
"""


def failing(entry: dict) -> list[str]:
    return [c["check"] for c in entry["checks"] if c["passed"] is False]


def test_unknown_contact_object_or_kind(cli, world):
    missing = cli("why", "nobody")
    assert missing.exit_code == 3, missing
    assert missing.stderr.strip().splitlines() == [
        "error: no contact 'nobody' (see 'campctl contacts list')"]
    unknown = cli("why", "a1", "campaign", "nothing")
    assert unknown.exit_code == 3 and unknown.stderr.startswith("error: no campaign named")
    assert cli("why", "a1", "segment", "x").exit_code == 2
    assert cli("why", "a1", "campaign").exit_code == 2


def test_each_rule_evaluated_alone_and_the_failing_one_named(ok, world):
    world.apply(SEGMENTS + "---\n" + campaign(audience="{segment: premium-fr}")
                + "---\n" + campaign("any", audience="{segment: either}"))
    world.launch("spring")
    entry = world.entry("a1", "campaign", "spring")
    rules = [(c["check"], c["passed"]) for c in entry["checks"] if " rule " in c["check"]]
    assert rules == [("segment premium-fr rule 1: group vip", True),
                     ('segment premium-fr rule 2: plan eq "premium"', True),
                     ("segment premium-fr rule 3: score gte 60", False)]
    assert entry["verdict"] == "will not get"
    assert entry["reason"] == "segment premium-fr rule 3: score gte 60: does not match"
    # match: any: one failing rule decides nothing, the segment does
    world.launch("any", start=False)
    c3 = world.entry("c3", "campaign", "any")
    assert failing(c3) == ["campaign started", 'segment either rule 1: plan eq "premium"']
    assert c3["reason"].startswith("campaign started: not started")
    ok("start", "campaign", "any")
    b2 = world.entry("b2", "campaign", "any")
    assert b2["reason"] == "segment either (match any): 0 of 2 rules match"
    assert world.entry("c3", "campaign", "any")["verdict"] == "will get"


def test_groups_optout_and_rights(ok, world):
    ok("users", "add", "alice", "--groups", "vip")
    world.apply(campaign(audience="{groups: [news]}"), as_user="alice")
    world.launch("spring")
    a1, b2, c3 = (world.entry(c, "campaign", "spring") for c in ("a1", "b2", "c3"))
    assert a1["verdict"] == "will not get"
    assert a1["reason"] == "audience groups: any of news: contact's groups: vip"
    assert b2["reason"] == "not opted out of promotional: opted out of promotional"
    assert c3["reason"] == "creator's rights (alice): outside alice's groups (vip)"
    assert [c["passed"] for c in a1["checks"] if c["check"].startswith("creator")] == [True]
    table = ok("why", "b2", "campaign", "spring").stdout
    assert "will not get" in table and "opted out of promotional" in table


def test_got_sent_message_with_id_and_time(ok, world):
    world.apply(campaign())
    world.launch("spring")
    ok("--now", T1, "tick")
    entry = world.entry("c3", "campaign", "spring", now=T1)
    assert entry["verdict"] == "got"
    message = entry["message"]
    assert message["message_id"].startswith("r") and message["message_id"].endswith("-c3")
    assert message["status"] == "sent" and message["sent_at"] == T1
    assert entry["reason"] == f"message {message['message_id']} sent {T1}"
    assert entry["run"]["status"] == "completed"
    table = ok("--now", T1, "why", "c3", "campaign", "spring").stdout
    assert "10:05 CET" in table  # the campaign's own zone


def test_failed_message_names_its_last_error(ok, world):
    world.apply(campaign(body="{{ age + 1 }}"))
    world.launch("spring")
    ok("--now", T1, "tick")
    entry = world.entry("c3", "campaign", "spring", now=T1)
    assert entry["verdict"] == "will not get"
    assert entry["message"]["status"] == "failed" and entry["message"]["last_error"]
    assert "failed after" in entry["reason"] and entry["message"]["last_error"] in entry["reason"]


def test_will_get_before_the_queue_is_built_then_waits_for_send_time(ok, world):
    world.apply(campaign(extra="schedule: {queue: {at: 2027-03-02T08:00}, "
                               "send: {at: 2027-03-02T12:00}}"))
    world.launch("spring")
    ok("tick")
    entry = world.entry("c3", "campaign", "spring")
    assert entry["verdict"] == "will get"
    assert entry["reason"].startswith("in the audience: run ")
    assert "builds its queue at 2027-03-02T07:00:00Z" in entry["reason"]
    later = "2027-03-02T07:30:00Z"
    ok("--now", later, "tick")
    waiting = world.entry("c3", "campaign", "spring", now=later)
    assert waiting["verdict"] == "waiting"
    assert waiting["hold"]["not_before"] == "2027-03-02T11:00:00Z"
    assert waiting["reason"].endswith("held until its send time 2027-03-02T11:00:00Z")


def test_window_hold_and_paused_run(ok, world):
    world.apply(campaign(extra='schedule: {queue: immediately, send: immediately, '
                               'window: "14:00-15:00"}'))
    world.launch("spring")
    ok("tick")
    entry = world.entry("c3", "campaign", "spring")
    assert entry["verdict"] == "waiting"
    assert entry["hold"]["not_before"] == "2027-03-01T13:00:00Z"
    assert "waits for the sending window 14:00-15:00: opens 2027-03-01T13:00:00Z" in (
        entry["reason"])
    ok("pause", "run", str(entry["run"]["id"]))
    paused = world.entry("c3", "campaign", "spring")
    assert "is paused" in paused["reason"] and paused["verdict"] == "waiting"


def test_rate_hold_and_retry_time(ok, world):
    world.apply("kind: Channel\nname: slow\ntype: outbox\nrate: 1/h\n---\n"
                "kind: Channel\nname: hook\ntype: webhook\nurl: http://127.0.0.1:9/x\n"
                "timeout: 1\n---\n"
                + campaign(extra="channel: slow\nschedule: {queue: immediately, "
                                 "send: immediately}")
                + "---\n" + campaign("hooked", extra="channel: hook\nschedule: "
                                     "{queue: immediately, send: immediately}"))
    world.launch("spring")
    world.launch("hooked")
    ok("--now", T1, "tick")
    entries = {e["message"]["message_id"]: e for e in
               (world.entry(c, "campaign", "spring", now=T1) for c in ("a1", "c3"))}
    held = [e for e in entries.values() if e["verdict"] == "waiting"]
    assert len(held) == 1, entries
    assert held[0]["hold"]["rate"] == {"channel": "slow", "limit": 1, "per_seconds": 3600,
                                       "used": 1}
    assert "waits for channel slow's rate (1 per 3600s, used up): next window " \
           "2027-03-01T10:00:00Z" in held[0]["reason"]
    retry = world.entry("c3", "campaign", "hooked", now=T1)
    assert retry["verdict"] == "waiting"
    assert retry["message"]["next_attempt_at"] == retry["hold"]["not_before"]
    assert f"retries at {retry['hold']['not_before']}" in retry["reason"]


PLAN = """kind: Plan
name: launch
schedule: {type: manual, timezone: Europe/Paris}
stages:
  - {campaign: staged, stage: teaser}
  - {campaign: staged, stage: follow}
---
kind: Campaign
name: staged
timezone: Europe/Paris
closes_at: 2027-06-30T23:59
type: one-off
message_type: service
message: {subject: "Hi", body: "Hello"}
audience: {groups: [news]}
stages:
  - {name: teaser, controlled_by_plan: true, audience: {groups: [vip]}}
  - {name: follow, controlled_by_plan: true}
"""


def test_plan_stages_are_answered_under_their_plan(ok, world):
    world.apply(PLAN)
    world.launch("staged", start=False)
    ok("submit", "plan", "launch")
    ok("approve", "plan", "launch")
    # A manual plan with no instance yet: nothing of it runs until someone starts it.
    never = world.why("a1", "plan", "launch")["objects"]
    assert [(e["verdict"], e["run"]) for e in never] == [("will not get", None)] * 2
    assert {e["reason"] for e in never} == {
        "plan started: manual plan launch was never started: 'campctl start plan launch' "
        "creates an instance that runs its stages"}
    ok("start", "plan", "launch")
    listing = world.why("a1")["objects"]
    assert [(e["kind"], e["name"], e["campaign"], e["stage"]) for e in listing] == [
        ("plan", "launch", "staged", "teaser"), ("plan", "launch", "staged", "follow")]
    teaser, follow = listing
    assert teaser["verdict"] == "will get" and teaser["run"] is not None
    assert all(c["check"] != "plan started" for c in teaser["checks"] + follow["checks"])
    assert follow["verdict"] == "will not get"
    assert follow["reason"] == "audience groups: any of news: contact's groups: vip"
    c3 = world.why("c3", "plan", "launch")["objects"][0]
    assert c3["reason"] == "audience groups: any of vip: contact's groups: news"


SCENARIO = """kind: Scenario
name: onboarding
reentry: once
launch: {type: event, event: signed_up}
steps:
  - id: welcome
    send: {message_type: transactional, subject: "Welcome", body: "Hi"}
  - id: pause
    wait: 3d
  - id: bye
    send: {message_type: promotional, subject: "Bye", body: "Bye"}
"""


def test_scenario_entry_current_step_wake_up_and_reentry(ok, world):
    world.apply(SCENARIO)
    ok("activate", "scenario", "onboarding")
    before = world.entry("c3", "scenario", "onboarding")
    assert before["verdict"] == "will get" and before["reason"] == "enters on event signed_up"
    b2 = world.entry("b2", "scenario", "onboarding")  # the welcome step still sends
    assert b2["verdict"] == "will get"
    assert failing(b2) == ["not opted out of promotional"]
    ok("--now", T1, "events", "emit", "signed_up", "--contact", "c3")
    ok("--now", T1, "tick")
    inside = world.entry("c3", "scenario", "onboarding", now=T1)
    assert inside["verdict"] == "waiting"
    assert inside["profile"]["step"] == "pause"
    assert inside["reason"] == "at step pause (waiting), wakes at 2027-03-04T09:05:00Z"
    assert inside["message"]["status"] == "sent"
    end = "2027-03-05T09:00:00Z"
    ok("--now", end, "tick")
    done = world.entry("c3", "scenario", "onboarding", now=end)
    assert done["verdict"] == "got" and done["profile"]["status"] == "completed"
    assert done["reason"].endswith("; re-entry once: will not enter again")
    assert failing(done) == ["re-entry once"]


def test_why_writes_nothing(ok, world, state):
    world.apply(SEGMENTS + "---\n" + campaign(audience="{segment: premium-fr}") + "---\n"
                + SCENARIO)
    world.launch("spring")
    ok("activate", "scenario", "onboarding")
    ok("--now", T1, "tick")
    before = dump_lines(state)
    listing = world.why("a1", now=T1)
    ok("--now", T1, "why", "c3")
    assert dump_lines(state) == before
    assert [(e["kind"], e["name"]) for e in listing["objects"]] == [
        ("campaign", "spring"), ("scenario", "onboarding")]
    assert listing["contact"] == "a1" and listing["groups"] == ["vip"]
    assert T0 < T1


@pytest.mark.sqlite_only("completion reads names from a state file")
def test_completion_of_kind_and_name(cli, world, state):
    world.apply(campaign())

    def complete(words: str) -> list[str]:
        env = {"_CAMPCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}
        return cli(env=env).stdout.split()

    assert complete("campctl why a1 ca") == ["campaign"]
    assert complete(f"campctl --state {state} why a1 campaign sp") == ["spring"]
