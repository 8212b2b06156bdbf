"""The console script's fast `tick` path and the Typer command print the same bytes: one
summary renderer and one error mapper (commands/tick_output.py)."""

from __future__ import annotations

import shutil

import pytest

from campctl.commands.tick_output import exit_for, json_text, nothing_due, summary_line
from campctl.errors import NotFound
from campctl.models import TickReport

from .campaign_texts import campaign

T0 = "2027-03-01T08:00:00Z"


@pytest.mark.sqlite_only("the direct tick path of the console script reads a SQLite file; "
                         "on PostgreSQL every tick is the Typer command")
@pytest.mark.parametrize("output", [[], ["-o", "json"]])
def test_a_busy_tick_prints_the_same_bytes_on_both_paths(launch, cli, state, tmp_path, output):
    launch(campaign("type: one-off\nschedule: {send: immediately}\n")
           + "---\n" + campaign("type: one-off\nschedule: {send: immediately}\n",
                                name="second"), at=T0)
    copy = tmp_path / "copy.db"
    shutil.copy(state, copy)  # no connection is open between commands
    fast = cli("--now", T0, *output, "tick")  # plain: the console script's own path
    full = cli("--state", str(copy), "--now", T0, *output, "--debug", "tick")  # the Typer app
    assert fast.exit_code == full.exit_code == 0, (fast, full)
    assert "sent 6" in fast.stdout or '"sent": 6' in fast.stdout, fast
    assert fast.stdout == full.stdout
    assert fast.stderr == full.stderr


@pytest.mark.sqlite_only("the direct tick path of the console script reads a SQLite file; "
                         "on PostgreSQL every tick is the Typer command")
def test_a_failed_object_is_counted_alike_on_both_paths(launch, cli, state, tmp_path, rows):
    launch(campaign("type: date-triggered\nschedule: {cron: \"0 9 * * *\"}\n"), at=T0)
    import sqlite3

    with sqlite3.connect(state) as db:  # a stored spec the engine cannot read
        db.execute("UPDATE objects SET spec = json_set(spec, '$.schedule.cron', '61 * * * *')")
    db.close()
    copy = tmp_path / "copy.db"
    shutil.copy(state, copy)
    fast = cli("--now", "2027-03-01T09:00:00Z", "tick")
    full = cli("--state", str(copy), "--now", "2027-03-01T09:00:00Z", "--debug", "tick")
    assert fast.exit_code == full.exit_code == 0, (fast, full)
    assert "failed objects 1" in fast.stdout, fast
    assert fast.stdout == full.stdout


def test_the_flat_json_writer_matches_json_dumps():
    import json

    flat = nothing_due("2027-03-01T08:00:00Z")
    assert json_text(flat) == json.dumps(flat, indent=2, ensure_ascii=False)
    report = TickReport(now=None, sent=3, skipped=1)
    report.object_failures.append({"object": "campaign/été", "reason": 'a "quoted" réason'})
    data = report.as_json()
    assert json_text(data) == json.dumps(data, indent=2, ensure_ascii=False)
    assert summary_line(data) == ("tick None: fired 0, built 0, sent 3, failed 0, cancelled 0, "
                                  "skipped 1, failed objects 1")


def test_one_error_mapper(capsys):
    import sqlite3

    assert exit_for(NotFound("no campaign named x\n  (see get)"), debug=False) == 3
    assert exit_for(sqlite3.DatabaseError("file is not a database"), debug=False) == 4
    assert exit_for(KeyError("k"), debug=False) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: no campaign named x   (see get)",
        "error: state file problem: file is not a database",
        "error: internal error: KeyError: 'k' (rerun with --debug for details)",
    ]
