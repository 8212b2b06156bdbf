"""The first slice of campctl on PostgreSQL, through the real CLI (issue 15).

Each flow runs against the test database (`state` is its URL, see conftest.py) and, where the
output can be compared, against a SQLite file too: the JSON outputs must be equal, ids included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pg_support import execute, query

from campctl.store.schema import SCHEMA_VERSION

pytestmark = pytest.mark.pg

NOW = "2027-03-01T09:00:00Z"
ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "plans"
CONTACTS = (
    "id,email,first_name,groups\n"
    "ann,ann@example.com,Ann,newsletter\n"
    'bob,bob@example.com,Bob,"newsletter;vip"\n'
)


def ok(result):
    assert result.exit_code == 0, result
    return result


def with_password(url: str, password: str) -> str:
    """postgresql://user@host... -> postgresql://user:password@host..."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


@pytest.mark.pg_fresh
def test_init_creates_the_schema_and_init_again_exits_0(cli, state, rows):
    ok(cli("init"))
    assert rows("SELECT version FROM campctl_schema") == [{"version": SCHEMA_VERSION}]
    tables = {r["tablename"] for r in rows(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    assert {"objects", "runs", "queue_items", "outbox", "history", "contacts"} <= tables
    again = ok(cli("init"))
    assert "exists" in again.stderr, again


@pytest.mark.pg_fresh
def test_a_command_before_init_exits_4(cli, state):
    result = cli("config", "get")
    assert result.exit_code == 4, result
    assert state in result.stderr, result  # names the URL (it has no password to hide)
    assert result.stderr.startswith("error:") and "campctl init" in result.stderr, result
    assert "Traceback" not in result.stderr


def test_newer_schema_is_refused_with_exit_4(cli, state):
    ok(cli("init"))
    execute(state, "UPDATE campctl_schema SET version = %s", (SCHEMA_VERSION + 5,))
    result = cli("config", "set", "four_eyes", "true")
    assert result.exit_code == 4, result
    assert "newer" in result.stderr and "upgrade campctl" in result.stderr, result
    assert query(state, "SELECT version FROM campctl_schema") == [{"version": SCHEMA_VERSION + 5}]


def test_config_set_get_and_history(cli, rows):
    ok(cli("init"))
    ok(cli("config", "set", "four_eyes", "true"))
    shown = ok(cli("config", "get", "-o", "json"))
    assert {"key": "four_eyes", "value": "true"} in shown.json, shown
    assert rows("SELECT count(*) AS n FROM history") == [{"n": 1}]


def _definitions_flow(cli, state) -> dict[str, object]:
    """validate, apply, get, describe and apply again; the JSON outputs by step."""
    at = ("--state", str(state))
    out: dict[str, object] = {}
    ok(cli(*at, "init"))
    validated = ok(cli(*at, "validate", str(PLANS))).stdout
    count = int(validated.split()[1])  # "ok: N definitions in M files"
    assert validated.startswith("ok: ") and count > 20, validated
    applied = ok(cli(*at, "apply", str(PLANS)))
    assert f"{count} created, 0 updated, 0 unchanged" in applied.stdout + applied.stderr, applied
    out["campaigns"] = ok(cli(*at, "get", "campaigns", "-o", "json")).json
    out["segments"] = ok(cli(*at, "get", "segments", "-o", "json")).json
    out["plans"] = ok(cli(*at, "get", "plans", "-o", "json")).json
    out["describe"] = ok(cli(*at, "describe", "campaign", "welcome-back", "-o", "json")).json
    out["yaml"] = ok(cli(*at, "get", "campaign", "price-update", "-o", "yaml")).stdout
    again = ok(cli(*at, "apply", str(PLANS)))
    assert f"0 created, 0 updated, {count} unchanged" in again.stdout + again.stderr, again
    return out


def test_validate_apply_get_describe_as_on_sqlite(cli, state, tmp_path):
    on_pg = _definitions_flow(cli, state)
    on_sqlite = _definitions_flow(cli, tmp_path / "ref.db")
    assert {c["name"] for c in on_pg["campaigns"]} >= {"welcome-back", "price-update"}
    for step in on_sqlite:
        assert on_pg[step] == on_sqlite[step], step


def _arrange_contacts(state) -> None:
    """ann and bob, as `contacts import CONTACTS` writes them, through the store's own seam."""
    from campctl.store.db import open_state

    db = open_state(str(state), create=False)
    try:
        with db.atomic():
            for ext, email, first, groups in (("ann", "ann@example.com", "Ann", ["newsletter"]),
                                              ("bob", "bob@example.com", "Bob",
                                               ["newsletter", "vip"])):
                db.execute(
                    "INSERT INTO contacts (external_id, email, attrs, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (ext, email, json.dumps({"first_name": first}), NOW, NOW))
                cid = db.scalar("SELECT id FROM contacts WHERE external_id = ?", (ext,))
                for grp in groups:
                    db.execute("INSERT INTO contact_groups (grp, contact_id) VALUES (?, ?)",
                               (grp, cid))
    finally:
        db.close()


def _outbox_flow(cli, state, contacts: Path | None) -> dict[str, object]:
    """A one-off campaign from submit to the outbox; the JSON outputs by step. Contacts come
    from `contacts import` when a file is given, else they are arranged in the state."""
    at = ("--state", str(state))
    out: dict[str, object] = {}
    ok(cli(*at, "init"))
    ok(cli(*at, "apply", str(PLANS)))
    if contacts is None:
        _arrange_contacts(state)
    else:
        imported = ok(cli(*at, "contacts", "import", str(contacts)))
        assert "2 inserted, 0 updated, 0 rejected" in imported.stdout + imported.stderr, imported
    for verb in ("submit", "approve", "start"):
        ok(cli(*at, verb, "campaign", "welcome-back"))
    tick = ok(cli(*at, "--now", NOW, "tick"))
    assert "fired 1, built 2, sent 2, failed 0" in tick.stdout + tick.stderr, tick
    out["outbox"] = ok(cli(*at, "outbox", "list", "-o", "json")).json
    out["log"] = ok(cli(*at, "log", "-o", "json")).json
    out["status"] = ok(cli(*at, "status", "-o", "json")).json
    out["history"] = ok(cli(*at, "history", "campaign", "welcome-back", "-o", "json")).json
    quiet = ok(cli(*at, "--now", "2027-03-01T09:05:00Z", "tick"))
    assert "sent 0" in quiet.stdout + quiet.stderr, quiet
    out["outbox_after"] = ok(cli(*at, "outbox", "list", "-o", "json")).json
    return out


def _compare_outbox_flows(cli, state, tmp_path, contacts: Path | None) -> None:
    on_pg = _outbox_flow(cli, state, contacts)
    on_sqlite = _outbox_flow(cli, tmp_path / "ref.db", contacts)
    assert [(m["message_id"], m["contact"], m["subject"]) for m in on_pg["outbox"]] == [
        ("r1-c1", "ann", "We missed you, Ann"), ("r1-c2", "bob", "We missed you, Bob")]
    assert "Run Completed" in {e["event"] for e in on_pg["log"]}
    for step in on_sqlite:
        assert on_pg[step] == on_sqlite[step], step


def test_one_off_campaign_ticks_to_the_outbox_as_on_sqlite(cli, state, tmp_path):
    _compare_outbox_flows(cli, state, tmp_path, None)


def test_imported_contacts_tick_to_the_outbox_as_on_sqlite(cli, state, tmp_path):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS)
    _compare_outbox_flows(cli, state, tmp_path, contacts)


def test_console_script_and_campctl_state_variable(state, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env.update(CAMPCTL_STATE=state, CAMPCTL_USER="tester", CAMPCTL_NOW="2027-03-01T09:00:00Z")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "campctl", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120)

    for args in (("init",), ("apply", str(PLANS)), ("tick",), ("status",)):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    assert not list(tmp_path.iterdir()), "a PostgreSQL state writes no file"
    assert query(state, "SELECT count(*) AS n FROM objects")[0]["n"] > 0


def test_a_password_in_the_url_is_never_printed_nor_stored(cli, state, tmp_path):
    secret = "s3cret-Pw-0x5f"
    url = with_password(state, secret)  # the test cluster trusts 127.0.0.1: any password works
    outputs = []
    for args in (("init",), ("init",), ("apply", str(PLANS)), ("config", "get"),
                 ("get", "campaigns"), ("status",), ("--debug", "get", "campaign", "nope"),
                 ("backup", str(tmp_path / "copy.db"))):
        outputs.append(cli("--state", url, *args))
    assert outputs[0].exit_code == 0, outputs[0]
    for result in outputs:
        assert secret not in result.stdout + result.stderr, result
    # Nor in the database: every text of every table.
    for table in [r["tablename"] for r in query(
            state, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]:
        found = query(state, f'SELECT count(*) AS n FROM "{table}" t WHERE t::text LIKE %s',
                      (f"%{secret}%",))
        assert found == [{"n": 0}], table
    # A server that does not answer: the error names the URL without its password.
    dead = with_password("postgresql://campctl@127.0.0.1:1/campctl_test", secret)
    failed = cli("--state", dead, "config", "get")
    assert failed.exit_code == 4, failed
    assert failed.stderr.startswith("error:") and "Traceback" not in failed.stderr, failed
    assert secret not in failed.stdout + failed.stderr, failed
