"""Results count what was delivered: a scenario launch or a run whose messages wait for retries
stays running and counts no success for them; it completes when they are handed over (success)
or fail for good (failure). The webhook on 127.0.0.1 answers 503 to the first attempts."""

from __future__ import annotations

CONTACTS = 5


def _at(minutes: int) -> str:
    return f"2027-03-01T09:{minutes:02d}:00Z"


def _setup(cli, tmp_path, write_yaml, url: str, *, max_attempts: int) -> None:
    csv = tmp_path / "contacts.csv"
    csv.write_text("id,email\n" + "".join(f"c{i},c{i}@example.com\n" for i in range(CONTACTS)))
    text = (f"kind: Channel\nname: hook\ntype: webhook\nurl: {url}\n"
            f"max_attempts: {max_attempts}\n---\n"
            "kind: Scenario\nname: promo\nlaunch: {type: manual}\nsteps:\n"
            "  - id: offer\n    send: {channel: hook, subject: \"Offer\", body: \"10% off\"}\n"
            "---\n"
            "kind: Campaign\nname: spring\ntimezone: UTC\ncloses_at: 2027-06-30T23:59\n"
            "type: one-off\nchannel: hook\nmessage: {subject: \"Hi\", body: \"Hello\"}\n"
            "audience: {all: true}\nschedule: {queue: immediately, send: immediately}\n")
    for step in (("init",), ("contacts", "import", str(csv)),
                 ("apply", str(write_yaml("defs.yaml", text))),
                 ("activate", "scenario", "promo")):
        result = cli("--now", _at(0), *step)
        assert result.exit_code == 0, (step, result)


def _launch(cli) -> dict:
    result = cli("--now", _at(0), "start", "scenario", "promo", "--all", "--yes")
    assert result.exit_code == 0, result
    launches = cli("--now", _at(0), "get", "launches", "-o", "json").json
    return launches[-1]


def _result(cli, now: str) -> dict:
    launch = cli("--now", now, "get", "launches", "-o", "json").json[0]
    return {k: launch[k] for k in ("status", "success", "failure", "other", "inside")}


def _tick(cli, now: str) -> None:
    result = cli("--now", now, "tick")
    assert result.exit_code == 0, result


def test_a_launch_waiting_for_retries_stays_running_then_succeeds(cli, tmp_path, write_yaml,
                                                                   http_server):
    _setup(cli, tmp_path, write_yaml, http_server.url, max_attempts=5)
    http_server.script = [(503, 0.0)] * CONTACTS
    _launch(cli)
    _tick(cli, _at(1))
    assert len(http_server.requests) == CONTACTS
    assert _result(cli, _at(1)) == {"status": "running", "success": 0, "failure": 0,
                                    "other": 0, "inside": CONTACTS}
    _tick(cli, _at(3))  # the retries are answered 200
    assert len(http_server.requests) == 2 * CONTACTS
    assert _result(cli, _at(3)) == {"status": "completed", "success": CONTACTS, "failure": 0,
                                    "other": 0, "inside": 0}


def test_a_launch_whose_retries_run_out_completes_with_failures_only(cli, tmp_path, write_yaml,
                                                                     http_server):
    _setup(cli, tmp_path, write_yaml, http_server.url, max_attempts=2)
    http_server.script = [(503, 0.0)] * (2 * CONTACTS)
    _launch(cli)
    _tick(cli, _at(1))
    assert _result(cli, _at(1))["status"] == "running"
    _tick(cli, _at(3))
    assert _result(cli, _at(3)) == {"status": "completed", "success": 0, "failure": CONTACTS,
                                    "other": 0, "inside": 0}
    history = cli("--now", _at(3), "get", "launches", "-o", "json").json[0]
    assert history["finished_at"] == _at(3)


def test_a_run_waiting_for_retries_counts_no_message_sent(cli, tmp_path, write_yaml,
                                                          http_server):
    _setup(cli, tmp_path, write_yaml, http_server.url, max_attempts=5)
    for step in (("submit", "campaign", "spring"),
                 ("approve", "campaign", "spring", "--as", "boss"),
                 ("start", "campaign", "spring")):
        assert cli("--now", _at(0), *step).exit_code == 0
    http_server.script = [(503, 0.0)] * CONTACTS
    _tick(cli, _at(1))
    run = cli("--now", _at(1), "get", "runs", "-o", "json").json[0]
    assert (run["status"], run["sent"], run["queued"]) == ("sending", 0, CONTACTS)
    _tick(cli, _at(3))
    run = cli("--now", _at(3), "get", "runs", "-o", "json").json[0]
    assert (run["status"], run["sent"], run["queued"]) == ("completed", CONTACTS, 0)
