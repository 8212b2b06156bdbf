"""Fixtures for isolation tests: launched campaigns, definitions broken inside the state file."""

from __future__ import annotations

import json

import pytest
from launch_support import approve_campaigns
from store_support import DirectState, execute_sql

T0 = "2027-03-01T08:00:00Z"


def campaign(name: str, *, body: str = "Hello {{ first_name }}", extra: str = "") -> str:
    return (f"kind: Campaign\nname: {name}\ntimezone: UTC\naudience: {{all: true}}\n"
            f"type: one-off\nschedule: {{send: immediately}}\n"
            f"message: {{subject: \"Hi\", body: {json.dumps(body)}}}\n{extra}")


@pytest.fixture
def launch(cli, write_yaml, tmp_path):
    """launch(yaml, contacts=3, start=True, csv_text=None): import contacts, apply, submit,
    approve and start every campaign in `yaml` at T0."""

    def setup(text: str, *, contacts: int = 3, start: bool = True,
              csv_text: str | None = None) -> list[str]:
        csv = tmp_path / "contacts.csv"
        csv.write_text(csv_text or "id,email,first_name\n" + "".join(
            f"c{i},c{i}@example.org,N{i}\n" for i in range(1, contacts + 1)))
        assert cli("--now", T0, "contacts", "import", str(csv)).exit_code == 0
        result = cli("--now", T0, "apply", str(write_yaml("defs.yaml", text)))
        assert result.exit_code == 0, result
        return approve_campaigns(cli, text, at=T0, start=start)

    return setup


@pytest.fixture
def edit_spec(state):
    """edit_spec(kind, name, change): rewrite an object's stored spec as a hand edit of the state
    file would (a definition that passed validation once and now breaks the engine)."""

    def edit(kind: str, name: str, change) -> None:
        with DirectState(state) as conn:
            (text,) = conn.execute("SELECT spec FROM objects WHERE kind = ? AND name = ?",
                                   (kind, name)).fetchone()
            spec = json.loads(text)
            change(spec)
            conn.execute("UPDATE objects SET spec = ? WHERE kind = ? AND name = ?",
                         (json.dumps(spec), kind, name))

    return edit


@pytest.fixture
def edit_run_spec(state):
    """edit_run_spec(campaign, change): rewrite the stored snapshot of a campaign's runs by hand
    (SQLite's json_set does not exist on PostgreSQL; the text is written compact, as json_set)."""

    def edit(campaign_name: str, change) -> None:
        with DirectState(state) as conn:
            for run_id, text in conn.execute("SELECT id, spec FROM runs WHERE campaign = ?",
                                             (campaign_name,)).fetchall():
                spec = json.loads(text)
                change(spec)
                conn.execute("UPDATE runs SET spec = ? WHERE id = ?",
                             (json.dumps(spec, separators=(",", ":")), run_id))

    return edit


@pytest.fixture
def sql(state):
    """sql(statement, params): one write straight into the state (either store)."""

    def run(statement: str, params=()) -> None:
        execute_sql(state, statement, params)

    return run
