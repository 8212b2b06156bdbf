"""`campctl failures run ID` lists a run's failed messages with their reasons; `describe run`
counts them and names the most frequent reasons."""

from __future__ import annotations

from campctl.engine.context import TickContext
from campctl.engine.delivery import deliver_due
from campctl.timeutil import parse_instant

NOW = parse_instant("2027-03-01T09:00:00Z")


def test_failures_of_a_run_with_reasons(arrange, db, cli, http_server):
    ids = [arrange.contact("ann", "ann@example.com", attrs={"first_name": "Ann"}),
           arrange.contact("bob", "bob@example.com"), arrange.contact("cid", "cid@example.com")]
    arrange.channel("hook", {"type": "webhook", "url": http_server.url, "max_attempts": 1})
    run = arrange.run(channel="hook", body="Hi {{ first_name }}")
    arrange.items(run, ids, channel="hook")
    http_server.script = [(422, 0.0)]  # ann's message reaches the hook and is refused
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 3

    rows = cli("failures", "run", str(run), "-o", "json").json
    assert [r["contact"] for r in rows] == ["ann", "bob", "cid"]
    assert set(rows[0]) >= {"message_id", "contact", "run", "attempts", "last_error",
                            "failed_at"}
    assert rows[0]["last_error"].startswith("HTTP 422") and rows[0]["attempts"] == 1
    assert "first_name" in rows[1]["last_error"] and rows[1]["run"] == run
    assert all(r["failed_at"] == "2027-03-01T09:00:00Z" for r in rows)
    assert [r["contact"] for r in cli("failures", "run", str(run), "--limit", "2",
                                      "-o", "json").json] == ["bob", "cid"]

    described = cli("describe", "run", str(run), "-o", "json").json
    assert described["failed"] == 3
    assert described["failure_reasons"][0]["count"] == 2
    assert "first_name" in described["failure_reasons"][0]["reason"]
    text = cli("describe", "run", str(run)).stdout
    assert f"campctl failures run {run}" in text


def test_failures_of_an_unknown_run_exit_3_and_none_is_an_empty_list(arrange, cli):
    assert cli("failures", "run", "99").exit_code == 3
    run = arrange.run()
    assert cli("failures", "run", str(run), "-o", "json").json == []
    assert "no failed messages" in cli("failures", "run", str(run)).stdout
