"""Templates render under a budget: a template that would work for minutes fails its own
messages with the reason, and the campaign beside it delivers in the same tick."""

from __future__ import annotations

import pytest

from campctl.engine.templates import (
    MAX_OUTPUT,
    MAX_STEPS,
    TemplateFailed,
    compile_message,
    render_problems,
)

from .conftest import T0, campaign

NESTED_LOOPS = ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
                "done")
EXPONENTIAL_MACRO = ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                     "{% endmacro %}{{ f(60) }}")
DOUBLING = ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}")


@pytest.mark.parametrize("body", [NESTED_LOOPS, EXPONENTIAL_MACRO, DOUBLING],
                         ids=["nested-loops", "exponential-macro", "concat-doubling"])
def test_a_runaway_template_fails_its_messages_and_the_other_campaign_delivers(
        launch, edit_spec, run_subprocess, rows, body):
    launch(campaign("healthy") + "---\n" + campaign("runaway"), contacts=3)
    edit_spec("Campaign", "runaway", lambda spec: spec["message"].update(body=body))
    # A real process, so that a template that still runs away fails this test by its timeout
    # instead of hanging the suite.
    result = run_subprocess("--now", T0, "-o", "json", "tick", "--max-seconds", "30",
                            timeout=300)
    assert result.exit_code == 0, result
    sent = rows("SELECT campaign, contact FROM outbox ORDER BY contact")
    assert [(r["campaign"], r["contact"]) for r in sent] == [
        ("healthy", "c1"), ("healthy", "c2"), ("healthy", "c3")]
    failed = rows("SELECT q.status, q.last_error FROM queue_items q JOIN runs r ON r.id = q.run_id"
                  " WHERE r.campaign = 'runaway'")
    assert len(failed) == 3
    assert {f["status"] for f in failed} == {"failed"}
    assert all(f["last_error"].startswith("body: template exceeds its budget") for f in failed)
    # The next tick finishes both runs; the runaway one is completed with 3 failed messages.
    assert run_subprocess("--now", "2027-03-01T08:01:00Z", "tick", timeout=300).exit_code == 0
    assert {r["campaign"]: r["status"] for r in rows("SELECT campaign, status FROM runs")} == {
        "healthy": "completed", "runaway": "completed"}


def test_a_budget_exceeded_by_one_contact_fails_that_message_only(launch, edit_spec, cli, rows):
    csv = ("id,email,first_name,size\n" "c1,c1@example.org,A,3\n" "c2,c2@example.org,B,99999\n"
           "c3,c3@example.org,C,2\n")
    launch(campaign("sized"), csv_text=csv)
    edit_spec("Campaign", "sized", lambda spec: spec["message"].update(
        body="{% for i in range(size|int) %}{% for j in range(size|int) %}.{% endfor %}"
             "{% endfor %}"))
    assert cli("--now", T0, "tick").exit_code == 0
    items = {r["contact"]: r for r in rows(
        "SELECT c.external_id AS contact, q.status, q.last_error FROM queue_items q"
        " JOIN contacts c ON c.id = q.contact_id")}
    assert items["c1"]["status"] == items["c3"]["status"] == "sent"
    assert items["c2"]["status"] == "failed"
    assert "exceeds its budget" in items["c2"]["last_error"]
    bodies = {r["contact"]: r["body"] for r in rows("SELECT contact, body FROM outbox")}
    assert bodies == {"c1": "." * 9, "c3": "." * 4}


@pytest.mark.parametrize("body", [
    # `+` doubling, a `{% set %}` block doubling, a macro returning its argument twice
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}x",
    "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set t %}{{ ns.s }}{{ ns.s }}"
    "{% endset %}{% set ns.s = t %}{% endfor %}x",
    "{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='ab') %}"
    "{% for i in range(64) %}{% set ns.s = d(ns.s) %}{% endfor %}x",
    # a recursive loop fed a long range, a filter walking a long range, a long range joined
    "{% for i in [range(99999)] recursive %}{{ loop(i) if i is iterable else '' }}{% endfor %}",
    "{{ range(99999)|map('string')|join }}",
    "{% for i in range(99999) %}{{ range(99999)|sum }}{% endfor %}",
    # many short loops adding up
    "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}",
])
def test_every_way_of_building_work_is_counted(body):
    with pytest.raises(TemplateFailed, match=r"body: template (exceeds its budget|not allowed)"):
        compile_message({"subject": "s", "body": body}).render({})


def test_ordinary_templates_render_as_before():
    message = {
        "subject": "Hello {{ first_name|title }}",
        "body": "{% macro row(p) %}- {{ p.name }}: {{ '%.2f'|format(p.price) }}\n{% endmacro %}"
                "{% for p in products|sort(attribute='price') %}{{ row(p) }}{% endfor %}"
                "{{ loop_total }}{% set ns = namespace(t='') %}"
                "{% for g in groups %}{% set ns.t = ns.t ~ g ~ ';' %}{% endfor %}{{ ns.t }}"
                "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}",
    }
    products = [{"name": f"p{i}", "price": 100 - i} for i in range(100)]
    subject, body = compile_message(message).render(
        {"first_name": "ann", "products": products, "groups": ["a", "b"], "loop_total": 7})
    assert subject == "Hello Ann"
    assert body.startswith("- p99: 1.00\n- p98: 2.00\n")
    assert body.endswith("7a;b;1/3 2/3 3/3 ")


def test_the_budget_is_per_message_not_per_process():
    compiled = compile_message({"subject": "s", "body": "{% for i in range(n) %}.{% endfor %}"})
    for _ in range(5):  # each message gets the whole budget again
        assert compiled.render({"n": MAX_STEPS // 2})[1] == "." * (MAX_STEPS // 2)
    with pytest.raises(TemplateFailed, match="exceeds its budget"):
        compiled.render({"n": MAX_STEPS + 1})


def test_output_and_string_limits_still_hold():
    with pytest.raises(TemplateFailed, match="not allowed"):
        compile_message({"body": "{{ 'a' * 10**7 }}"}).render({})
    with pytest.raises(TemplateFailed):
        compile_message({"body": "{{ lipsum(n=100000) }}"}).render({})
    body = "{{ s ~ s }}"
    assert compile_message({"body": body}).render({"s": "x" * 10})[1] == "x" * 20
    with pytest.raises(TemplateFailed, match="exceeds"):
        compile_message({"body": body}).render({"s": "x" * (MAX_OUTPUT // 2 + 1)})


def test_render_problems_name_the_field_and_ignore_missing_contact_data():
    assert render_problems({"subject": "Hi {{ first_name }}",
                            "body": "{{ age + 1 }} {{ '%d'|format(score) }} {{ x.y.z }}"}) == []
    problems = render_problems({"subject": "{{ 1 / 0 }}", "body": EXPONENTIAL_MACRO})
    assert problems[0].startswith("subject: template error: ZeroDivisionError")
    assert problems[1].startswith("body: template exceeds its budget")
    assert render_problems({"body": "{{ ''.__class__.__mro__ }}"})[0].startswith(
        "body: template not allowed")
