"""--now is checked by every command: empty, garbage or out-of-range values are usage errors."""

from __future__ import annotations

import pytest

# Store-agnostic: --now is checked while parsing, before the state is opened.
pytestmark = pytest.mark.store_agnostic

SEGMENT = "kind: Segment\nname: vip\nrules:\n  - {group: vip}\n"
BAD_NOW = ["", " ", "garbage", "2027-03-01T09:00", "0999-01-01T00:00Z", "1999-12-31T23:59Z",
           "3000-01-01T00:00Z", "9999-12-31T23:59:59Z", "99999-01-01T00:00Z",
           "0001-01-01T00:00+14:00"]


def _one_error_line(result) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --now"), result
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize("now", BAD_NOW)
@pytest.mark.parametrize("command", [["tick"], ["tick", "-o", "json"], ["get", "campaigns"],
                                     ["apply", "vip.yaml"], ["validate", "vip.yaml"]])
def test_a_bad_now_is_exit_2_whatever_the_command(cli, state, now, command):
    assert cli("init").exit_code == 0
    (state.parent / "vip.yaml").write_text(SEGMENT)
    result = cli("--now", now, *command)
    assert result.exit_code == 2, result
    _one_error_line(result)
    assert cli("get", "segments", "-o", "json").json == []  # apply wrote nothing


@pytest.mark.parametrize("now", ["", "3000-01-01T00:00Z", "garbage"])
def test_a_plain_tick_in_a_fresh_process_refuses_a_bad_now(cli, run_subprocess, now):
    assert cli("init").exit_code == 0
    result = run_subprocess("--now", now, "tick")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("error: --now") and "Traceback" not in result.stderr


@pytest.mark.parametrize("now", ["2000-01-01T00:00Z", "2999-12-31T23:59:59Z",
                                 "2999-12-31T23:00-05:00"])
def test_the_bounds_themselves_are_accepted(cli, now):
    assert cli("init").exit_code == 0
    result = cli("--now", now, "tick")
    assert result.exit_code == 0, result


def test_an_empty_environment_variable_means_unset(cli):
    assert cli("init").exit_code == 0
    result = cli("tick", env={"CAMPCTL_NOW": ""})
    assert result.exit_code == 0, result
