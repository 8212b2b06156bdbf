"""get runs / describe run: the JSON shape of a run, filters, counts, notes and history."""

from __future__ import annotations

RUN_KEYS = {"id", "campaign", "stage", "status", "scheduled_at", "built_at", "finished_at",
            "queued", "sent", "failed", "cancelled", "stale", "capped", "window_fallback",
            "instance", "restart_of", "notes", "left_out"}


def test_get_runs_json_shape_counts_and_notes(cli, make_run):
    first = make_run("sending", items=("sent", "sent", "queued", "failed", "cancelled"))
    second = make_run("failed", instance_id=3)
    assert cli("pause", "run", str(first), "--note", "checking the copy").exit_code == 0
    result = cli("get", "runs", "-o", "json")
    assert result.exit_code == 0, result
    runs = result.json
    assert [r["id"] for r in runs] == [second, first]  # newest first
    assert all(set(r) == RUN_KEYS for r in runs)
    by_id = {r["id"]: r for r in runs}
    assert by_id[first] | {} == {
        "id": first, "campaign": "spring-sale", "stage": "main", "status": "paused",
        "scheduled_at": "2027-03-01T08:00:00Z", "built_at": None, "finished_at": None,
        "queued": 1, "sent": 2, "failed": 1, "cancelled": 1, "stale": 0, "capped": 0,
        "window_fallback": 0, "instance": None, "restart_of": None, "notes": ["checking the copy"],
        "left_out": {"rights": 0, "reason": None},
    }
    assert by_id[second]["instance"] == 3 and by_id[second]["notes"] == []
    assert result.stderr == ""


def test_get_runs_filters(cli, make_run):
    a = make_run("sending")
    b = make_run("failed", campaign="other", instance_id=5)
    c = make_run("completed", instance_id=5)

    def ids(*args):
        result = cli("get", "runs", *args, "-o", "json")
        assert result.exit_code == 0, result
        return sorted(r["id"] for r in result.json)

    assert ids("--campaign", "spring-sale") == [a, c]
    assert ids("--instance", "5") == [b, c]
    assert ids("--status", "failed") == [b]
    assert ids("--status", "failed,completed") == [b, c]
    unknown = cli("get", "runs", "--campaign", "nope", "-o", "json")
    assert unknown.exit_code == 3 and unknown.stderr.startswith("error: no campaign named")
    bad = cli("get", "runs", "--status", "done")
    assert bad.exit_code == 2 and "unknown run status" in bad.stderr


def test_get_runs_table_and_empty(cli, make_run):
    empty = cli("init")
    assert empty.exit_code == 0
    assert "no runs" in cli("get", "runs").stdout
    make_run("queued")
    table = cli("get", "runs", env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "spring-sale" in table.stdout
    assert "CET" in table.stdout  # times in the campaign's zone (Europe/Paris)


def test_describe_run_shows_history_and_restart_link(cli, make_run):
    run_id = make_run("sending", items=("queued",))
    assert cli("stop", "run", str(run_id), "--note", "typo", "--as", "alice").exit_code == 0
    restarted = cli("restart", "run", str(run_id), "--note", "fixed", "-o", "json")
    new_id = restarted.json["new_run"]
    result = cli("describe", "run", str(run_id), "-o", "json")
    assert result.exit_code == 0, result
    data = result.json
    assert RUN_KEYS <= set(data)
    assert data["status"] == "skipped" and data["restarted_as"] == [new_id]
    assert data["cancelled"] == 1 and data["notes"] == ["typo", "fixed"]
    assert [(h["action"], h["actor"], h["note"]) for h in data["history"]] == [
        ("stop", "alice", "typo"), ("restart", "tester", "fixed")]
    table = cli("describe", "run", str(new_id), env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "restart of run" in table.stdout
