"""The launch summary (steps, messages, targeted, left out for opt-out and for rights) before
confirmation and in the launch's answer; each launch's numbers in the execution log, read with
`log --launch ID`."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at
from test_scenarios_launch import CONTACTS, PROMO, _on_terminal, _setup


def test_summary_before_confirmation_lists_steps_messages_and_left_out(scn, state):
    _setup(scn)
    output, code = _on_terminal(state, ["start", "scenario", "promo", "--all"], b"n\n")
    assert code == 1, output
    # promo: 3 steps, 2 sends; bob opted out of promotional.
    assert "3 step(s), 2 message(s); 4 contact(s) targeted, 1 left out for opt-out, " \
        "0 left out for rights" in output, output


def test_launch_answer_and_log_carry_the_numbers(scn):
    _setup(scn)
    first = scn.ok("start", "scenario", "promo", "--group", "a", "--yes", "-o", "json",
                   "--now", at()).json
    assert (first["steps"], first["messages"], first["targeted"], first["opted_out"]) == \
        (3, 2, 2, 1)
    scn.ok("start", "scenario", "promo", "--group", "b", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.tick(at(td(days=1, minutes=1)))

    rows = scn.ok("log", "--launch", "1", "-o", "json", "--now", at(td(days=2))).json
    assert [r["event"] for r in rows] == ["Launch Created", "Launch Completed"]
    assert all(r["launch"] == 1 and r["scenario"] == "promo" for r in rows)
    assert "2 contact(s) targeted, 1 left out for opt-out, 0 left out for rights" \
        in rows[0]["details"]
    # ann got both messages; bob's sends were skipped for opt-out (other).
    assert "targeted 2: success 1, failure 0, abandoned 0, other 1" in rows[1]["details"]
    assert [r["launch"] for r in scn.ok("log", "--launch", "2", "-o", "json").json] == [2, 2]
    missing = scn.cli("log", "--launch", "9")
    assert missing.exit_code == 3 and "no launch 9" in missing.stderr


def test_a_stopped_launch_logs_its_numbers(scn):
    _setup(scn)
    scn.ok("start", "scenario", "promo", "--group", "b", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    scn.ok("stop", "launch", "1", "--now", at(td(minutes=2)))
    [row] = [r for r in scn.ok("log", "--launch", "1", "-o", "json").json
             if r["event"] == "Launch Abandoned"]
    assert "2 profile(s) abandoned; targeted 2: success 0, failure 0, abandoned 2" \
        in row["details"]


def test_summary_counts_contacts_left_out_for_the_creators_rights(scn):
    scn.contacts(*CONTACTS)
    scn.ok("users", "add", "alice", "--groups", "b", "--now", at())
    scn.ok("apply", scn.write_yaml("promo.yaml", PROMO), "--as", "alice", "--now", at())
    scn.activate("promo")
    result = scn.ok("start", "scenario", "promo", "--all", "--yes", "--now", at())
    # bob (opted out) is in group a, outside alice's rights: each contact is counted once.
    assert "4 contact(s) targeted, 0 left out for opt-out, 2 left out for rights" \
        in result.stderr
