"""The daemon's screen, printed once at the end of `daemon --ticks N` without a terminal: the
state file and the clock, messages per second and an ETA, why each run waits, times in the
campaign's zone."""

from __future__ import annotations

from .campaign_texts import campaign

T0 = "2027-03-01T08:00:00Z"  # 09:00 in Paris


def _three_campaigns(launch, cli):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n", name="fast",
                    tz="Europe/Paris")
           + "---\n" + campaign("type: one-off\nschedule: {send: immediately, window: "
                                "\"20:00-21:00\"}\n", name="evening", tz="America/New_York")
           + "---\n" + campaign("type: one-off\nschedule: {send: immediately}\n",
                                name="held", tz="Europe/Paris"), at=T0, contacts=4)
    first = cli("--now", T0, "-o", "json", "tick", "--max-messages", "1")
    assert first.exit_code == 0, first
    runs = {r["campaign"]: r["id"] for r in cli("-o", "json", "get", "runs").json}
    assert cli("--now", T0, "pause", "run", str(runs["held"])).exit_code == 0
    return runs


def test_the_daemon_screen_says_why_runs_wait_and_how_fast_they_send(launch, cli, state):
    runs = _three_campaigns(launch, cli)
    result = cli("--now", "2027-03-01T08:00:10Z", "daemon", "--interval", "1s", "--ticks", "2",
                 "--max-messages", "1")
    assert result.exit_code == 0, result
    out = result.stdout
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("tick ")][:2] == [
        "tick 2027-03-01T08:00:10Z: fired 0, built 0, sent 1, failed 0, cancelled 0",
        "tick 2027-03-01T08:00:11Z: fired 0, built 0, sent 1, failed 0, cancelled 0"]
    header = next(line for line in lines if line.startswith("campctl daemon"))
    assert f"state {state}" in header
    assert "clock 2027-03-01 08:00 UTC (virtual: --now, +1s per tick)" in header
    assert "messages/s 1.0" in header  # one message in the one second between the two ticks

    def row(run: int) -> str:
        found = [line for line in lines if line.startswith(f"│ {run} ")]
        assert len(found) == 1, out
        return found[0]

    fast = row(runs["fast"])  # 4 contacts: 1 sent before, 1 + 1 by the daemon, 1 left
    assert [c.strip() for c in fast.split("│")[4:8]] == ["3", "1", "1.0",
                                                        "2027-03-01 09:00 CET"], out
    # the ETA (1 left at 1/s: 08:00:12Z) in Paris time
    evening = row(runs["evening"])
    assert "window 20:00-21:00: opens 2027-03-01 20:00 EST" in evening  # New York time
    assert f"pause: campctl resume run {runs['held']}" in row(runs["held"])


def test_the_real_clock_is_named_and_json_stays_one_line_per_tick(launch, cli):
    _three_campaigns(launch, cli)
    result = cli("daemon", "--interval", "1s", "--ticks", "1", env={"CAMPCTL_NOW": ""})
    assert result.exit_code == 0, result
    assert "(real)" in result.stdout
    as_json = cli("-o", "json", "daemon", "--interval", "1s", "--ticks", "1")
    assert as_json.exit_code == 0, as_json
    assert len(as_json.stdout.splitlines()) == 1
