"""contacts import (CSV): attributes are stored as the compact JSON SQLite itself would write,
remembered cells never cross columns, and a number too large for a float stays text."""

from __future__ import annotations

import json

from store_support import sqlite_json


def test_huge_decimal_stays_text_and_the_file_imports(cli, rows, datafile):
    huge = "9" * 400 + ".5"
    path = datafile("c.csv", f"id,big,small\nx1,{huge},1.5\nx2,3,2\n")
    result = cli("contacts", "import", path, "-o", "json")
    assert result.exit_code == 0, result
    assert result.json["inserted"] == 2 and result.json["rejected"] == 0
    stored = {r["external_id"]: json.loads(r["attrs"])
              for r in rows("SELECT external_id, attrs FROM contacts")}
    assert stored == {"x1": {"big": huge, "small": 1.5}, "x2": {"big": 3, "small": 2}}


def test_stored_attribute_text_is_sqlite_canonical_json(cli, rows, datafile):
    path = datafile("c.csv", 'id,note,n,f,b,zip\nx1,"say ""hi"", é\\/ \t",12,0.10,TRUE,007\n')
    assert cli("contacts", "import", path).exit_code == 0
    attrs = rows("SELECT attrs FROM contacts")[0]
    assert attrs["attrs"] == sqlite_json(attrs["attrs"])  # the text SQLite's json() gives
    assert json.loads(attrs["attrs"]) == {"note": 'say "hi", é\\/ \t', "n": 12, "f": 0.1,
                                          "b": True, "zip": "007"}


def test_remembered_cells_stay_in_their_column_and_updates_merge(cli, rows, datafile):
    lines = ["id,plan,tier"] + [f"p{i},gold,{'gold' if i % 2 else 'true'}" for i in range(50)]
    assert cli("contacts", "import", datafile("a.csv", "\n".join(lines) + "\n")).exit_code == 0
    again = datafile("b.csv", "id,tier,extra\np1,,1\np2,false,\n")
    result = cli("contacts", "import", again, "-o", "json")
    assert result.json["updated"] == 2, result
    stored = {r["external_id"]: json.loads(r["attrs"])
              for r in rows("SELECT external_id, attrs FROM contacts WHERE external_id IN "
                            "('p0', 'p1', 'p2')")}
    assert stored == {"p0": {"plan": "gold", "tier": True},
                      "p1": {"plan": "gold", "tier": "gold", "extra": 1},
                      "p2": {"plan": "gold", "tier": False}}
