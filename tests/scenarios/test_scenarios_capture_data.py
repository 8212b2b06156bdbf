"""Capture data (the capturing event's data, or `start scenario --data`) on the profile, shown by
`profiles` and `describe scenario`, and `event.*` in templates; capture conditions of an event
scenario; an event scenario with `allow_manual` started by hand for one contact."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at

CART = """\
kind: Scenario
name: cart
reentry: after_exit
launch:
  type: event
  event: cart_abandoned
  allow_manual: true
  audience: {groups: [shoppers]}
steps:
  - id: remind
    send: {subject: "Your cart of {{ event.amount }} EUR", body: "Item {{ event.item }}"}
"""


def _subjects(scn) -> dict[str, str]:
    """What the outbox received, per contact: subject | body."""
    return {r["contact"]: f"{r['subject']} | {r['body']}" for r in scn.rows(
        "SELECT contact, subject, body FROM outbox WHERE scenario = 'cart'")}


def _setup(scn):
    scn.contacts({"id": "ann", "groups": ["shoppers"]}, {"id": "bob", "groups": ["shoppers"]},
                 {"id": "cy"})
    scn.apply(CART)
    scn.activate("cart")


def test_event_data_is_kept_shown_and_rendered(scn):
    _setup(scn)
    scn.ok("events", "emit", "cart_abandoned", "--contact", "ann", "--data",
           '{"amount": 10, "item": "socks"}', "--now", at(td(minutes=1)))
    # Two events of one contact in a tick: one capture, with the latest event's data.
    scn.ok("events", "emit", "cart_abandoned", "--contact", "bob", "--data",
           '{"amount": 1, "item": "old"}', "--now", at(td(minutes=1)))
    scn.ok("events", "emit", "cart_abandoned", "--contact", "bob", "--data",
           '{"amount": 25, "item": "hat"}', "--now", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))

    rows = {r["contact"]: r for r in scn.profiles("cart")}
    assert rows["ann"]["data"] == {"amount": 10, "item": "socks"}
    assert rows["bob"]["data"] == {"amount": 25, "item": "hat"}
    table = scn.ok("profiles", "scenario", "cart", "--now", at(td(minutes=2)))
    assert '"item":"socks"' in table.stdout
    describe = scn.ok("describe", "scenario", "cart", "-o", "json", "--now", at()).json
    assert {r["contact"]: r["data"] for r in describe["recent_profiles"]}["bob"]["item"] == "hat"

    assert _subjects(scn) == {"ann": "Your cart of 10 EUR | Item socks",
                              "bob": "Your cart of 25 EUR | Item hat"}


def test_capture_conditions_leave_out_non_matching_contacts(scn):
    _setup(scn)
    scn.ok("events", "emit", "cart_abandoned", "--contact", "cy", "--now", at(td(minutes=1)))
    scn.ok("events", "emit", "cart_abandoned", "--contact", "ann", "--data", '{"amount": 3}',
           "--now", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))
    assert [r["contact"] for r in scn.profiles("cart")] == ["ann"]
    unmet = scn.rows("SELECT details FROM exec_log WHERE event = 'Capture Conditions Unmet'")
    assert len(unmet) == 1 and unmet[0]["details"].startswith("1 capture(s)")


def test_manual_trigger_of_an_event_scenario_for_one_contact(scn):
    _setup(scn)
    result = scn.ok("start", "scenario", "cart", "--contact", "bob", "--data",
                    '{"amount": 7, "item": "scarf"}', "--yes", "-o", "json",
                    "--now", at(td(minutes=1)))
    assert result.json["entered"] == 1
    [profile] = scn.profiles("cart")
    assert (profile["contact"], profile["data"]) == ("bob", {"amount": 7, "item": "scarf"})
    scn.tick(at(td(minutes=2)))
    assert _subjects(scn) == {"bob": "Your cart of 7 EUR | Item scarf"}

    # Only one contact at a time; a contact outside the capture conditions is refused.
    many = scn.cli("start", "scenario", "cart", "--all", "--yes", "--now", at(td(minutes=3)))
    assert many.exit_code == 1 and "--contact" in many.stderr
    outside = scn.cli("start", "scenario", "cart", "--contact", "cy", "--yes",
                      "--now", at(td(minutes=3)))
    assert outside.exit_code == 1 and "capture conditions" in outside.stderr
    # A template that needs event data refuses a launch without it.
    bare = scn.cli("start", "scenario", "cart", "--contact", "ann", "--yes",
                   "--now", at(td(minutes=3)))
    assert bare.exit_code == 1 and "validation problem" in bare.stderr


def test_event_scenario_without_allow_manual_cannot_be_started(scn):
    scn.contacts({"id": "ann", "groups": ["shoppers"]})
    scn.apply(CART.replace("  allow_manual: true\n", ""))
    scn.activate("cart")
    result = scn.cli("start", "scenario", "cart", "--contact", "ann", "--yes", "--now", at())
    assert result.exit_code == 1 and "allow_manual" in result.stderr


def test_restart_reentry_takes_the_new_captures_data(scn):
    scn.contacts({"id": "ann", "groups": ["shoppers"]})
    scn.apply(CART.replace("reentry: after_exit", "reentry: restart").replace(
        "  - id: remind\n", "  - id: pause\n    wait: 1d\n  - id: remind\n"))
    scn.activate("cart")
    scn.ok("events", "emit", "cart_abandoned", "--contact", "ann", "--data",
           '{"amount": 1, "item": "pen"}', "--now", at(td(minutes=1)))
    scn.tick(at(td(minutes=2)))
    scn.ok("events", "emit", "cart_abandoned", "--contact", "ann", "--data",
           '{"amount": 2, "item": "ink"}', "--now", at(td(minutes=3)))
    scn.tick(at(td(minutes=4)))
    [profile] = scn.profiles("cart")
    assert profile["data"] == {"amount": 2, "item": "ink"}
    scn.tick(at(td(days=1, minutes=5)))
    assert _subjects(scn) == {"ann": "Your cart of 2 EUR | Item ink"}
