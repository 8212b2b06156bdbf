"""Shell completion of object names: `campctl describe plan <TAB>` lists the plans of the state
file named on the line, without creating or changing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from campctl.commands.completion import complete_object_name

# Completion reads a state file only: for a PostgreSQL URL it lists nothing, by design
# (docs/design/postgresql.md §1, file-only features).
pytestmark = pytest.mark.sqlite_only("completion reads object names from a state file")

EXAMPLES = Path(__file__).resolve().parent.parent / "plans"


@pytest.fixture
def applied(cli, state):
    assert cli("apply", EXAMPLES).exit_code == 0
    return state


def _complete(cli, words: str) -> list[str]:
    """The bash protocol: the words typed so far, the cursor on the last (maybe empty) one."""
    parts = words.split(" ")
    env = {"_CAMPCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1)}
    result = cli(env=env)
    assert result.exit_code == 0, result
    return result.stdout.split()


def test_names_of_the_kind_the_command_names(cli, applied):
    assert _complete(cli, f"campctl --state {applied} describe plan ") == [
        "easter-push", "night-sync", "spring-launch", "weekly-digest"]
    assert _complete(cli, f"campctl --state {applied} get plans s") == ["spring-launch"]
    assert _complete(cli, f"campctl --state {applied} start scenario ") == [
        "onboarding", "vip-care", "winback"]
    assert _complete(cli, f"campctl --state {applied} history campaign spring") == [
        "spring-sale"]
    assert _complete(cli, f"campctl --state {applied} describe plan nothing-like-it") == []


def test_the_state_file_comes_from_the_environment_too(cli, applied, monkeypatch):
    monkeypatch.setenv("CAMPCTL_STATE", str(applied))
    assert _complete(cli, "campctl stats scenario w") == ["winback"]


def test_completion_never_creates_or_changes_a_state_file(cli, applied, tmp_path):
    missing = tmp_path / "missing.db"
    assert _complete(cli, f"campctl --state {missing} describe plan ") == []
    assert not missing.exists()
    before = applied.read_bytes()
    _complete(cli, f"campctl --state {applied} describe plan ")
    assert applied.read_bytes() == before


def test_a_file_that_is_no_state_file_completes_nothing(cli, tmp_path):
    other = tmp_path / "notes.db"
    other.write_text("not a database")
    assert _complete(cli, f"campctl --state {other} describe plan ") == []


def test_the_console_script_answers_the_completion_protocol(applied, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env.update(_CAMPCTL_COMPLETE="complete_bash", COMP_WORDS="campctl describe scenario o",
               COMP_CWORD="3", CAMPCTL_STATE=str(applied))
    proc = subprocess.run([sys.executable, "-m", "campctl"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout.split(), proc.stderr) == (0, ["onboarding"], "")


def test_a_command_that_names_no_kind_completes_nothing():
    class Context:  # the one attribute read before the kind is known
        info_name = "instance"

    assert complete_object_name(Context(), "") == []  # type: ignore[arg-type]
