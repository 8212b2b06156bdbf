"""The YAML that `get -o yaml` and `export` write reads back, through campctl's own YAML
reader, as exactly the values that were dumped (strings stay strings, whatever they look like)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from campctl.definitions.dump import definition_yaml
from campctl.definitions.yamlsrc import parse, to_plain
from campctl.models import Kind

TRICKY = st.sampled_from([
    "yes", "No", "on", "OFF", "y", "n", "null", "~", "true", "0755", "1.10", "9:00", "17:30",
    "2027-03-10 02:30:00", "0x1F", ".inf", "-.nan", "1e3", "- item", "key: value", "# hash",
    "a #b", "*alias", "&anchor", "!tag", "%directive", "@at", "`tick", "'single'", '"double"',
    "trailing ", " leading", "tab\tinside", "line\nbreak", "ends\n", "crlf\r\nline", "", " ",
    "{{ first_name }}", "[list]", "{map}", "ünïcödé", "emoji 🎉", "\u2028sep", "=", "<<", "?",
    "-", "a - b", "x-y", "a.b.", "NaN", "Infinity", "0o17", "0b101", "+1", "1_000",
])
TEXT = st.one_of(TRICKY, st.text(max_size=30))
VALUE = st.recursive(
    st.one_of(TEXT, st.integers(-10**12, 10**12), st.booleans(),
              st.floats(allow_nan=False, allow_infinity=False, width=32)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True),
                                            inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(spec=st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), VALUE,
                            max_size=6),
       description=st.one_of(st.none(), TEXT))
def test_dumped_values_read_back_unchanged(spec, description):
    spec = {k: v for k, v in spec.items() if k not in ("kind", "name", "description")}
    text = definition_yaml(Kind.SEGMENT, "s", description, spec)
    docs, stop = parse(text)
    assert stop is None and len(docs) == 1 and not docs[0].problems, text
    expected = {"kind": "Segment", "name": "s",
                **({"description": description} if description is not None else {}), **spec}
    assert to_plain(docs[0].root) == expected, text
    assert list(to_plain(docs[0].root)) == list(expected), "key order as applied"
