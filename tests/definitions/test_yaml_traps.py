"""YAML 1.1 traps and unsafe YAML (PITFALLS.md): what PyYAML would do, and what campctl does."""

from __future__ import annotations

import pytest

from campctl.definitions import load_texts


def load(text: str):
    return load_texts([("t.yaml", text, None)])


def messages(text: str) -> list[str]:
    return [f"{i.line}:{i.col} {i.message}" for i in load(text).issues]


SEG = "kind: Segment\nname: s\nrules:\n  - {{attr: {attr}, op: {op}, value: {value}}}\n"


def spec_of(text: str) -> dict:
    result = load(text)
    assert result.valid, result.issues
    return result.definitions[0].spec


@pytest.mark.parametrize(("value", "expected"), [
    ("NO", "NO"),          # Norway: YAML 1.1 says False
    ("no", "no"),
    ("off", "off"),
    ("on", "on"),
    ("yes", "yes"),
    ("true", True),
    ("false", False),
    ("0755", "0755"),      # YAML 1.1 octal 493
    ("1.10", 1.1),         # a number is a number where any scalar is allowed
    ("'1.10'", "1.10"),
    ("9:00", "9:00"),      # YAML 1.1 sexagesimal 540
    ("1_000", "1_000"),
    ("0x1F", "0x1F"),
    ("2027-03-01", "2027-03-01"),  # YAML 1.1 date
    ("2027-03-01 10:00:00", "2027-03-01 10:00:00"),  # YAML 1.1 naive datetime
    ("12", 12),
    ("-3.5", -3.5),
])
def test_rule_values_are_typed_the_yaml_12_way(value, expected):
    spec = spec_of(SEG.format(attr="country", op="eq", value=value))
    got = spec["rules"][0]["value"]
    assert got == expected and type(got) is type(expected)


def test_string_fields_take_the_source_text():
    spec = spec_of("""kind: Campaign
name: c
code: 1.10
message_type: on
audience: {all: true}
message: {subject: 2027-04-02, body: 0755}
type: one-off
schedule: {send: {at: 2027-04-02 10:00:00}}
""")
    assert spec["code"] == "1.10"
    assert spec["message_type"] == "on"
    assert spec["message"] == {"subject": "2027-04-02", "body": "0755"}
    assert spec["schedule"]["send"]["at"] == "2027-04-02 10:00:00"


@pytest.mark.parametrize(("window", "fragment"), [
    ("9:00-17:00", "bad window '9:00-17:00'"),
    ("17:30", "YAML 1.1 reads 17:30 as a number; quote it"),
    ("'09:00-09:00'", "start and end are the same"),
])
def test_windows_are_rejected_with_a_hint(window, fragment):
    text = ("kind: Campaign\nname: c\naudience: {all: true}\nmessage: {body: hi}\n"
            f"type: one-off\nschedule:\n  send: immediately\n  window: {window}\n")
    [problem] = messages(text)
    assert problem.startswith("8:11 schedule.window: ") and fragment in problem


def test_quoted_window_wrapping_midnight_is_fine():
    text = ("kind: Campaign\nname: c\naudience: {all: true}\nmessage: {body: hi}\n"
            "type: one-off\nschedule:\n  send: immediately\n  window: \"22:00-06:00\"\n")
    assert spec_of(text)["schedule"]["window"] == "22:00-06:00"


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "OFF"])
def test_yaml11_booleans_are_refused_where_a_boolean_is_wanted(word):
    text = f"kind: Channel\nname: m\ntype: smtp\nhost: h\nfrom: f\nstarttls: {word}\n"
    [problem] = messages(text)
    assert problem.startswith("6:11 starttls: expected true or false")
    assert "YAML 1.1 booleans" in problem


def test_duplicate_keys_report_both_positions():
    text = "kind: Segment\nname: s\nrules: [{group: a}]\nmatch: all\nmatch: any\n"
    assert messages(text) == ["5:1 duplicate key 'match' (first at 4:1)"]


def test_duplicate_keys_in_nested_mappings():
    text = "kind: Segment\nname: s\nrules:\n  - {group: a, group: b}\n"
    assert messages(text) == ["4:16 duplicate key 'group' (first at 4:6)"]


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system",
                                 "!!binary", "!!set", "!!omap", "!custom", "!!timestamp"])
def test_unsafe_and_non_standard_tags_are_refused(tag):
    text = f"kind: Segment\nname: s\nrules: [{{group: a}}]\ndescription: {tag} x\n"
    problems = messages(text)
    assert problems and "is not allowed" in problems[0] and problems[0].startswith("4:14")


def test_standard_explicit_tags_are_honoured():
    spec = spec_of("kind: Channel\nname: m\ntype: smtp\nhost: h\nfrom: f\nport: !!int '25'\n")
    assert spec["port"] == 25
    text = SEG.format(attr="zip", op="eq", value="!!str 0755")
    assert spec_of(text)["rules"][0]["value"] == "0755"


def test_billion_laughs_is_stopped_quickly():
    import time

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    problems = messages("\n".join(lines) + "\n")
    assert time.monotonic() - started < 120  # no exponential blow-up (a guard, not a speed target)
    assert len(problems) == 1 and "document too large" in problems[0]


def test_recursive_alias_is_refused():
    problems = messages("kind: Segment\nname: s\nrules: &r [*r]\n")
    assert problems and ("nested deeper" in problems[0] or "too large" in problems[0]
                         or "invalid YAML" in problems[0])


def test_merge_keys_work_and_explicit_keys_win():
    text = """kind: Campaign
name: base
audience: {all: true}
message: &msg {subject: "S", body: "B"}
type: one-off
schedule: {send: immediately}
stages:
  - name: a
    message: {<<: *msg, subject: "Other"}
"""
    spec = spec_of(text)
    assert spec["stages"][0]["message"] == {"subject": "Other", "body": "B"}


def test_several_documents_and_empty_ones():
    text = "---\n---\nkind: Segment\nname: a\nrules: [{group: a}]\n---\n" \
           "kind: Segment\nname: b\nrules: [{group: b}]\n...\n"
    result = load(text)
    assert result.valid and [d.name for d in result.definitions] == ["a", "b"]


def test_errors_before_a_syntax_error_are_still_reported():
    text = "kind: Segment\nname: Bad\nrules: [{group: a}]\n---\nkind: [\n"
    problems = messages(text)
    assert problems[0].startswith("2:7 name: invalid name 'Bad'")
    assert "invalid YAML" in problems[-1]


def test_non_utf8_and_huge_files(tmp_path):
    from campctl.definitions import load_paths

    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "huge.yaml").write_text("description: " + "x" * 2_100_000 + "\n")
    result = load_paths([str(tmp_path)])
    assert [(i.file.rsplit("/", 1)[-1], i.message[:20]) for i in result.issues] == [
        ("huge.yaml", "file larger than 200"), ("latin.yaml", "not UTF-8 text (byte")]
