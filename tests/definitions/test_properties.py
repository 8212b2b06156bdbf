"""Property: whatever a definition file becomes (keys deleted, types changed, junk injected,
text cut), `campctl validate` answers exit 0 or 1 with clean JSON — never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campctl.definitions.codes import BY_CODE
from campctl.definitions.yamlsrc import parse, to_plain

# Store-agnostic: validate reads definition files only.
pytestmark = pytest.mark.store_agnostic

PLANS = Path(__file__).resolve().parents[2] / "plans"
EXAMPLES = sorted(PLANS.rglob("*.yaml"))
DOCS = [(p, to_plain(d.root)) for p in EXAMPLES for d in parse(p.read_text())[0] if d.root]

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["9:00", "yes", "0755", "* * * * *", "${X", "{{ x",
                                            "2027-02-30T10:00", "end", "outbox", "-1", "1e309"]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                             max_size=2),
)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*prefix, i))


def mutate(doc, path, action, junk):
    if not path:
        return junk if action == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = junk
    elif isinstance(parent, dict):
        parent[f"{last}x"] = junk
    else:
        parent.insert(last, junk)
    return doc


def check(cli, files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        result = cli("validate", "--format", "json", tmp)
    assert result.exit_code in (0, 1), result
    report = json.loads(result.stdout)
    assert set(report) == {"valid", "errors"} and report["valid"] == (result.exit_code == 0)
    for error in report["errors"]:
        assert set(error) == {"file", "line", "col", "code", "level", "message"}
        assert error["code"] in BY_CODE and error["level"] == "error", error
        assert error["line"] >= 1 and error["col"] >= 1 and error["message"]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def others(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in EXAMPLES if p != path}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_definitions_never_crash_validate(cli, data):
    index = data.draw(st.integers(0, len(DOCS) - 1))
    path, original = DOCS[index]
    doc = json.loads(json.dumps(original))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(list(paths_of(doc))))
        action = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        try:
            doc = mutate(doc, where, action, data.draw(JUNK))
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(doc, allow_unicode=True)
    check(cli, {**others(path), "mutated.yaml": text})


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_text_never_crashes_validate(cli, data):
    path = data.draw(st.sampled_from(EXAMPLES))
    text = path.read_text()
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    insert = data.draw(st.sampled_from(["", "\t", ": ", "- ", "&a ", "*a", "!!python/none ",
                                        "[", "}", "'", "\"", "%", "---\n", "\x00", "<<: *x\n"]))
    check(cli, {**others(path), path.name: text[:start] + insert + text[end:]})
