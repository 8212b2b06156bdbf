"""validate and approve test-render every template for a synthetic contact; a manual scenario
launch renders every send step for every targeted contact and says how many would fail."""

from __future__ import annotations

from .conftest import T0, campaign
from .test_template_budget import EXPONENTIAL_MACRO


def test_validate_names_the_field_of_a_template_that_fails_its_test_render(cli, write_yaml):
    path = write_yaml("promo.yaml", campaign("promo", body=EXPONENTIAL_MACRO) + (
        "stages:\n  - name: main\n  - name: late\n    message: {subject: \"{{ 1 / 0 }}\"}\n"))
    result = cli("validate", str(path))
    assert result.exit_code == 1, result
    lines = result.stdout.splitlines()
    assert any(":7:" in line and "message.body: template exceeds its budget" in line
               for line in lines), lines
    assert any("message.subject: template error: ZeroDivisionError" in line for line in lines)
    # What only a contact's data decides is left to the send.
    fine = write_yaml("fine.yaml", campaign(
        "fine", body="Hi {{ first_name|title }}, {{ age + 1 }} {{ '%d'|format(score) }}"))
    assert cli("validate", str(fine)).exit_code == 0


def test_approve_refuses_a_stored_template_that_fails_its_test_render(launch, edit_spec, cli):
    launch(campaign("promo"), start=False)
    assert cli("--now", T0, "revise", "campaign", "promo").exit_code == 0
    edit_spec("Campaign", "promo", lambda spec: spec["message"].update(body=EXPONENTIAL_MACRO))
    assert cli("--now", T0, "submit", "campaign", "promo").exit_code == 0
    result = cli("--now", T0, "approve", "campaign", "promo")
    assert result.exit_code == 1, result
    assert "stage main: message.body: template exceeds its budget" in result.stderr
    status = cli("--now", T0, "-o", "json", "get", "campaign", "promo")
    assert "pending-approval" in status.stdout


SCENARIO = """kind: Scenario
name: hello
launch: {type: manual}
steps:
  - id: hi
    send: {subject: "Hi", body: "Dear {{ nickname }}"}
"""


def test_a_manual_launch_renders_for_every_targeted_contact(launch, cli, rows):
    csv = ("id,email,nickname\n" "c1,c1@example.org,Al\n" "c2,c2@example.org,\n"
           "c3,c3@example.org,Cy\n" "c4,c4@example.org,\n" "c5,c5@example.org,Ed\n")
    launch(SCENARIO, csv_text=csv, start=False)
    assert cli("--now", T0, "activate", "scenario", "hello").exit_code == 0
    result = cli("--now", T0, "start", "scenario", "hello", "--all", "--yes")
    assert result.exit_code == 1, result
    # The first contact renders; two others would not: the launch is refused, with the count.
    assert "undefined variable" in result.stderr and "first c2" in result.stderr
    assert "2 of 5 targeted contact(s) would get a message that fails to render" in result.stderr
    assert rows("SELECT * FROM scenario_launches") == []
    one = cli("--now", T0, "start", "scenario", "hello", "--contact", "c3", "--yes")
    assert one.exit_code == 0, one
