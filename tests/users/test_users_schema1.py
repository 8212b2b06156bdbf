"""A state file of the first release: its objects have no known creator, so nothing restricts
them, and users can be added to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from store_support import is_pg

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state-v1-demo.db"


def test_objects_of_a_schema_1_file_have_no_creator_and_no_restriction(cli, state, rows,
                                                                        tmp_path):
    if is_pg(state):  # a first-release file, moved to PostgreSQL the way a user moves it
        source = tmp_path / "v1.db"
        shutil.copyfile(FIXTURE, source)
        copied = cli("state", "copy", str(source), state)
        assert copied.exit_code == 0, copied
    else:
        shutil.copyfile(FIXTURE, state)
    added = cli("users", "add", "alice", "--groups", "vip", "-o", "json")
    assert added.exit_code == 0, added
    described = cli("describe", "campaign", "spring-sale", "-o", "json")
    assert described.exit_code == 0, described
    assert described.json["created_by"] is None
    assert rows("SELECT count(*) AS n FROM objects WHERE created_by IS NOT NULL") == [{"n": 0}]
    runs = cli("get", "runs", "-o", "json")
    assert runs.exit_code == 0, runs
    assert all(r["left_out"] == {"rights": 0, "reason": None} for r in runs.json)
    assert cli("worklist", "--all", "-o", "json").json == []
