"""Template properties: contact data is data, never template code; limits hold for any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from campctl.engine.templates import (
    MAX_OUTPUT,
    TemplateFailed,
    check_message,
    compile_message,
    contact_context,
)


@settings(max_examples=60, deadline=None)
@given(value=st.text(max_size=200), other=st.one_of(st.integers(), st.booleans(), st.none(),
                                                   st.text(max_size=20)))
def test_contact_values_render_verbatim_never_as_code(value, other):
    context = contact_context(external_id="c1", email="a@example.com", phone=None,
                              attrs={"first_name": value, "x": other}, groups=["vip"])
    subject, body = compile_message({"subject": "Hi {{ first_name }}",
                                     "body": "[{{ first_name }}]"}).render(context)
    assert body == f"[{value}]"
    assert subject == " ".join(f"Hi {value}".split()) or subject == f"Hi {value}"
    assert "\n" not in subject and "\r" not in subject


def test_fixed_fields_win_over_attributes():
    context = contact_context(external_id="real", email="e@x", phone="+1", groups=["g"],
                              attrs={"id": "fake", "email": "fake", "groups": "fake", "plan": 1})
    assert context == {"id": "real", "email": "e@x", "phone": "+1", "groups": ["g"], "plan": 1}


def test_check_message_lists_syntax_and_render_problems():
    assert check_message({"subject": "ok", "body": "{{ a }}"}, {"a": 1}) == []
    problems = check_message({"subject": "{{ nope }}", "body": "{{ also_nope }}"}, {})
    assert len(problems) == 2 and problems[0].startswith("subject: undefined variable")
    syntax = check_message({"subject": "ok", "body": "{% if %}"}, {})
    assert syntax[0].startswith("body: template syntax error at line 1")
    assert check_message({"body": "{{ x }}"}, None) == []


@settings(max_examples=40, deadline=None)
@given(times=st.integers(min_value=0, max_value=10**12))
def test_repetition_never_exceeds_the_cap(times):
    compiled = compile_message({"subject": "s", "body": "{{ 'ab' * n }}"})
    try:
        _, body = compiled.render({"n": times})
    except TemplateFailed as exc:
        assert 2 * times > MAX_OUTPUT
        assert "limit" in exc.reason
    else:
        assert len(body) == 2 * times <= MAX_OUTPUT
