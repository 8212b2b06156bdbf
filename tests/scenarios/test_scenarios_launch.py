"""Manual launch of a scenario: count, validation, confirmation, launches and their results,
stop."""

from __future__ import annotations

from datetime import timedelta as td

from scenario_support import at
from store_support import execute_sql

PROMO = """\
kind: Scenario
name: promo
reentry: parallel
launch: {type: manual}
steps:
  - id: offer
    send: {message_type: promotional, subject: "Offer for {{ first_name }}", body: "10% off"}
  - id: wait-1d
    wait: 1d
  - id: reminder
    send: {message_type: promotional, subject: "Reminder", body: "last day"}
"""

BROKEN = """\
kind: Scenario
name: broken
launch: {type: manual}
steps:
  - id: hello
    send: {subject: "Hi", body: "Dear {{ nickname }}"}
"""

CONTACTS = (
    {"id": "ann", "first_name": "Ann", "groups": ["a"]},
    {"id": "bob", "first_name": "Bob", "groups": ["a"], "opt_out": ["promotional"]},
    {"id": "cid", "first_name": "Cid", "groups": ["b"]},
    {"id": "dan", "first_name": "Dan", "groups": ["b"]},
)


def _setup(scn):
    scn.contacts(*CONTACTS)
    scn.apply(PROMO)
    scn.activate("promo")


def test_count_prints_the_number_and_launches_nothing(scn):
    _setup(scn)
    result = scn.ok("start", "scenario", "promo", "--group", "a", "--count")
    assert result.stdout.strip() == "2"
    assert scn.ok("start", "scenario", "promo", "--all", "--count", "-o", "json").json == 4
    both = scn.ok("start", "scenario", "promo", "--group", "a", "--group", "b", "--count")
    assert both.stdout.strip() == "4"
    assert scn.ok("start", "scenario", "promo", "--contact", "cid", "--count").stdout.strip() \
        == "1"
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0
    assert scn.rows("SELECT count(*) AS n FROM scenario_profiles")[0]["n"] == 0


def test_validation_failure_launches_nothing(scn):
    scn.contacts(*CONTACTS)
    scn.apply(BROKEN)
    scn.activate("broken")
    result = scn.cli("start", "scenario", "broken", "--all", "--yes")
    assert result.exit_code == 1, result
    assert "step hello" in result.stderr and "nickname" in result.stderr
    assert "nothing launched" in result.stderr
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0
    assert scn.rows("SELECT count(*) AS n FROM scenario_profiles")[0]["n"] == 0


def test_refusals(scn):
    _setup(scn)
    no_terminal = scn.cli("start", "scenario", "promo", "--all", input="y\n")
    assert no_terminal.exit_code == 1 and "--yes" in no_terminal.stderr, no_terminal
    assert scn.cli("start", "scenario", "promo", "--yes").exit_code == 2
    assert scn.cli("start", "scenario", "promo", "--all", "--group", "a", "--yes").exit_code == 2
    assert scn.cli("start", "scenario", "promo", "--contact", "zed", "--yes").exit_code == 3
    assert scn.cli("start", "scenario", "nope", "--all", "--yes").exit_code == 3
    assert scn.cli("stop", "launch", "99").exit_code == 3
    scn.deactivate("promo", at(td(minutes=1)))
    inactive = scn.cli("start", "scenario", "promo", "--all", "--yes")
    assert inactive.exit_code == 1 and "activate scenario promo" in inactive.stderr
    scn.apply("""\
        kind: Scenario
        name: evented
        launch: {type: event, event: x}
        steps:
          - {id: s, send: {subject: "x", body: "y"}}
        """)
    scn.activate("evented")
    wrong = scn.cli("start", "scenario", "evented", "--all", "--yes")
    assert wrong.exit_code == 1 and "launch.type manual" in wrong.stderr
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0


def test_launches_results_stop_and_opt_out(scn):
    _setup(scn)
    first = scn.ok("start", "scenario", "promo", "--group", "a", "--yes", "-o", "json").json
    assert first["id"] == 1 and first["targeted"] == 2
    scn.tick(at(td(minutes=1)))
    # bob opted out of promotional messages: his send is skipped, ann's goes.
    assert [m[:3] for m in scn.messages("promo")] == [("ann", "offer", at(td(minutes=1)))]

    second = scn.ok("start", "scenario", "promo", "--group", "b", "--yes", "-o", "json",
                    "--now", at(td(minutes=2))).json
    assert second["id"] == 2 and second["targeted"] == 2
    scn.tick(at(td(minutes=3)))
    assert sorted(m[:2] for m in scn.messages("promo")[1:]) == [("cid", "offer"),
                                                                 ("dan", "offer")]
    offers_of_2 = {m[0]: m for m in scn.messages("promo") if m[0] in ("cid", "dan")}

    stopped = scn.ok("stop", "launch", "2", "--note", "wrong list", "--now", at(td(hours=1)))
    assert "abandoned" in stopped.stderr
    again = scn.cli("stop", "launch", "2")
    assert again.exit_code == 1, again
    # The offers already handed over stand (only unsent ones are cancelled); nothing is queued.
    now_2 = {m[0]: m for m in scn.messages("promo") if m[0] in ("cid", "dan")}
    assert set(now_2) == set(offers_of_2)
    for contact, message in now_2.items():
        assert message[3] == ("cancelled" if offers_of_2[contact][3] == "queued"
                              else offers_of_2[contact][3])

    scn.tick(at(td(days=1, minutes=5)))
    reminders = [m[:3] for m in scn.messages("promo") if m[1] == "reminder"]
    assert reminders == [("ann", "reminder", at(td(days=1, minutes=5)))]

    launches = {r["id"]: r for r in scn.launches()}
    assert set(scn.launches()[0]) >= {"id", "scenario", "status", "targeted", "success",
                                      "failure", "abandoned", "other"}
    assert {k: launches[1][k] for k in ("status", "targeted", "success", "failure", "abandoned",
                                        "other")} == {
        "status": "completed", "targeted": 2, "success": 1, "failure": 0, "abandoned": 0,
        "other": 1}
    assert {k: launches[2][k] for k in ("status", "success", "abandoned", "other")} == {
        "status": "abandoned", "success": 0, "abandoned": 2, "other": 0}
    profiles = {(p["contact"], p["launch"]): p["status"] for p in scn.profiles("promo")}
    assert profiles[("cid", 2)] == "abandoned" and profiles[("ann", 1)] == "completed"

    # --include-opted-out overrides bob's opt-out, in a new launch for one contact.
    third = scn.ok("start", "scenario", "promo", "--contact", "bob", "--include-opted-out",
                   "--yes", "-o", "json", "--now", at(td(days=2))).json
    assert third["id"] == 3 and third["targeted"] == 1
    scn.tick(at(td(days=2, minutes=1)))
    scn.tick(at(td(days=3, minutes=1)))
    assert [m[1] for m in scn.messages("promo") if m[0] == "bob"] == ["offer", "reminder"]
    only_promo = scn.launches("--scenario", "promo")
    assert [r["id"] for r in only_promo] == [1, 2, 3]
    assert only_promo[2]["status"] == "completed" and only_promo[2]["success"] == 1
    history = scn.rows("SELECT name, action, note FROM history WHERE kind = 'launch' ORDER BY id")
    assert ("2", "stop", "wrong list") in {(h["name"], h["action"], h["note"]) for h in history}
    table = scn.ok("get", "launches").stdout
    assert table.count("promo") == 3


def test_message_that_fails_for_one_contact_counts_as_failure(scn):
    # Both render at the launch check; bob loses his first_name before the tick, so his message
    # fails at delivery.
    scn.contacts({"id": "ann", "first_name": "Ann"}, {"id": "bob", "first_name": "Bob"})
    scn.apply("""\
        kind: Scenario
        name: hello
        launch: {type: manual}
        steps:
          - id: hi
            send: {subject: "Hi {{ first_name }}", body: "welcome"}
        """)
    scn.activate("hello")
    scn.ok("start", "scenario", "hello", "--all", "--yes")
    execute_sql(scn.state, "UPDATE contacts SET attrs = '{}' WHERE external_id = 'bob'")
    scn.tick(at(td(minutes=1)))
    statuses = {m[0]: m[3] for m in scn.messages("hello")}
    assert statuses == {"ann": "sent", "bob": "failed"}
    launch = scn.launches()[0]
    assert (launch["status"], launch["success"], launch["failure"]) == ("completed", 1, 1)


def _on_terminal(state, args, answer: bytes) -> tuple[str, int]:
    """Run campctl with a pseudo-terminal as stdin/stdout, answer the prompt, return output."""
    import os
    import pty
    import select
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env.update(CAMPCTL_USER="tester")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child process
        os.execve(sys.executable, [sys.executable, "-m", "campctl", "--state", str(state),
                                   "--now", at(td(minutes=1)), *args], env)
    out = b""
    answered = False
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not answered and b"[y/N]" in out:
            os.write(fd, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_confirmation_on_a_terminal(scn, state):
    _setup(scn)
    output, code = _on_terminal(state, ["start", "scenario", "promo", "--group", "b"], b"n\n")
    assert code == 1 and "2 contact(s) targeted" in output and "nothing launched" in output
    assert scn.rows("SELECT count(*) AS n FROM scenario_launches")[0]["n"] == 0
    output, code = _on_terminal(state, ["start", "scenario", "promo", "--group", "b"], b"y\n")
    assert code == 0 and "launch 1" in output, output
    assert scn.launches()[0]["targeted"] == 2


def test_a_launch_that_completes_records_its_history_and_log_row(scn):
    # Every state change has its history row: the tick's running → completed move of a launch
    # has its history row (and an execution-log row) in the same transaction, like start and stop.
    _setup(scn)
    scn.ok("start", "scenario", "promo", "--group", "b", "--yes", "--now", at())
    scn.tick(at(td(minutes=1)))
    assert scn.launches()[0]["status"] == "running"
    scn.tick(at(td(days=1, minutes=1)))
    assert scn.launches()[0]["status"] == "completed"
    history = scn.rows("SELECT action, from_status, to_status FROM history"
                       " WHERE kind = 'launch' AND name = '1' ORDER BY id")
    assert [tuple(h.values()) for h in history] == [("start", None, "running"),
                                                    ("complete", "running", "completed")]
    logged = scn.rows("SELECT event, details FROM exec_log WHERE scenario = 'promo'"
                      " AND event = 'Launch Completed'")
    assert len(logged) == 1 and "launch 1" in logged[0]["details"]
