"""Plan instances of a state file written by the first release read back whole through the typed
store records: every instance, stage, snapshot and log row as stored."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

RELEASED_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "state-v1-demo.db"


def _rows(path: Path, sql: str, params: tuple = ()) -> list[dict]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def test_instances_of_a_released_state_file_read_back_as_stored(tmp_path, cli):
    copy = tmp_path / "released.db"
    shutil.copyfile(RELEASED_V1, copy)
    listed = cli("--state", str(copy), "-o", "json", "get", "instances")
    assert listed.exit_code == 0, listed
    stored = _rows(copy, "SELECT * FROM plan_instances ORDER BY id")
    assert len(stored) >= 3
    assert [(i["id"], i["name"], i["plan"], i["status"], i["started_at"], i["finished_at"],
             i["plan_version"]) for i in listed.json] == [
        (r["id"], r["name"], r["plan"], r["status"], r["started_at"], r["finished_at"],
         r["plan_version"]) for r in stored]
    for row in stored:
        shown = cli("--state", str(copy), "-o", "json", "describe", "instance", str(row["id"]))
        assert shown.exit_code == 0, shown
        view = shown.json
        assert view["snapshot"] == json.loads(row["snapshot"])
        assert view["timezone"] == view["snapshot"]["timezone"]
        assert view["transition"] == view["snapshot"]["transition"]
        stages = _rows(copy, "SELECT * FROM stage_instances WHERE instance_id = ? "
                             "ORDER BY position", (row["id"],))
        assert [(s["campaign"], s["stage"], s["status"], s["run"], s["run_log"],
                 s["completed"], s["has_errors"]) for s in view["stages"]] == [
            (s["campaign"], s["stage"], s["status"], s["run_id"], s["run_log"],
             bool(s["completed"]), bool(s["has_errors"])) for s in stages]
        log = _rows(copy, "SELECT at, event, details FROM exec_log WHERE instance_id = ? "
                          "ORDER BY id", (row["id"],))
        assert log, "the demo logs every instance"
        assert [(e["at"], e["event"], e["details"]) for e in view["log"]] == [
            (e["at"], e["event"], e["details"]) for e in log]
