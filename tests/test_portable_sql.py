"""A lint for SQLite-only SQL in campctl/store/ (issue 15, step 0: portable SQL).

The store's SQL is meant to run unchanged on SQLite and PostgreSQL (docs/architecture.md,
"Portable SQL"). Each construct below works on SQLite only, or differs on PostgreSQL, and has a
portable replacement. A place that cannot change yet is named in ALLOWED with the reason; an
entry that no longer matches anything fails too, so the list only shrinks.

The scan reads the string literals of every store module (f-strings with `{}` for their
holes, docstrings left out) and, for the Python-side constructs, the module's source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

STORE = Path(__file__).resolve().parent.parent / "campctl" / "store"

# name -> (pattern over one SQL literal, the portable replacement)
SQL_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "where-1": (re.compile(r"\bWHERE\s+[01]\b(?!\s*[=<>!])", re.I), "WHERE true"),
    "not-coalesce-0": (re.compile(r"\bNOT\s+coalesce\(.*,\s*0\)", re.I),
                       "coalesce(x, false)"),
    "last_insert_rowid": (re.compile(r"\blast_insert_rowid\s*\(", re.I), "INSERT … RETURNING id"),
    "limit-minus-1": (re.compile(r"\bLIMIT\s+-\s*1\b", re.I), "leave the LIMIT clause out"),
    "iif": (re.compile(r"\biif\s*\(", re.I), "CASE WHEN … THEN … ELSE … END"),
    "char()": (re.compile(r"\bchar\s*\(\s*\d", re.I), "bind the character as a parameter"),
    "sum-of-boolean": (
        re.compile(r"\bsum\s*\([^()]*(?:[=<>]|\bIN\b|\bIS\b|\bAND\b|\bOR\b)[^()]*\)", re.I),
        "count(*) FILTER (WHERE …)"),
    "scalar-max-min": (re.compile(r"\b(?:max|min)\s*\(\s*[^(),]+,\s*[^(),]+\)", re.I),
                       "CASE WHEN a > b THEN a ELSE b END"),
    "untyped-select-param": (
        re.compile(r"\(\s*SELECT\s+(?:\?\d*|:[A-Za-z_]\w*)\s*(?:UNION\b|\))", re.I),
        "SELECT CAST(? AS BIGINT)"),
    "param-is-null": (
        re.compile(r"(?<![\w.)'\"])(?:\?\d*|:[A-Za-z_]\w*)\s+IS\s+(?:NOT\s+)?NULL\b", re.I),
        "CAST(? AS TEXT) IS NULL"),
    "unqualified-upsert-column": (
        re.compile(r"\bDO\s+UPDATE\s+SET\b.*?(?<![\w.])(\w+)\s*=\s*\1\s*[-+*/|]", re.I | re.S),
        "SET col = table.col + excluded.col"),
}

# name -> (pattern over the module's Python source, the portable replacement)
SOURCE_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "lastrowid": (re.compile(r"\.lastrowid\b"), "INSERT … RETURNING id"),
    "limit-minus-1-parameter": (re.compile(r"-1 if \w+ is None"),
                                "leave the LIMIT clause out when there is no limit"),
    "sql-boolean-fragment": (re.compile(r"""(?:return|=|or)\s*\(?\s*["'][01]["']"""),
                             'the fragments "true" / "false"'),
    "boolean-coalesce-0": (re.compile(r"""["']coalesce\(["'] \+ .*["'], 0\)["']"""),
                           "coalesce(…, false)"),
}

SUBQUERY_RULE = "unaliased-subquery"  # FROM (…) without an alias: PostgreSQL < 16 refuses it

# (module, rule) -> why it stays for now. Remove an entry when its place is rewritten.
ALLOWED: dict[tuple[str, str], str] = {}


def _sql_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal that is not a docstring; f-string holes as {}."""
    tree = ast.parse(path.read_text())
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                docstrings.add(id(body[0].value))
    parts_of_fstrings: set[int] = set()
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ""
            for value in node.values:
                parts_of_fstrings.add(id(value))
                text += value.value if isinstance(value, ast.Constant) else "{}"
            out.append((node.lineno, text))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings and id(node) not in parts_of_fstrings):
            out.append((node.lineno, node.value))
    return out


def _unaliased_subqueries(sql: str) -> list[str]:
    """`FROM (…)` closed inside this literal and not followed by an alias."""
    found = []
    for match in re.finditer(r"\bFROM\s*\(", sql, re.I):
        depth, i = 1, match.end()
        while i < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        if depth:
            continue  # closes in another literal: not decidable here
        rest = sql[i:].lstrip()
        if not re.match(r"(?:AS\b|(?!(?:WHERE|GROUP|ORDER|LIMIT|UNION|JOIN|LEFT|ON)\b)[A-Za-z_])",
                        rest, re.I):
            found.append(sql[match.start():i])
    return found


def findings() -> dict[tuple[str, str], list[str]]:
    """(module, rule) -> the offending places as 'line: text'."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(STORE.glob("*.py")):
        # schema.py: shipped SQLite migrations are never edited; dialect.py: the seam, where each
        # store's own form of a fragment lives by design
        if path.name in ("schema.py", "dialect.py"):
            continue
        for line, sql in _sql_literals(path):
            for name, (pattern, _) in SQL_RULES.items():
                if pattern.search(sql):
                    found.setdefault((path.name, name), []).append(f"{line}: {sql[:120]}")
            for sub in _unaliased_subqueries(sql):
                found.setdefault((path.name, SUBQUERY_RULE), []).append(f"{line}: {sub[:120]}")
        for number, text in enumerate(path.read_text().splitlines(), 1):
            for name, (pattern, _) in SOURCE_RULES.items():
                if pattern.search(text):
                    found.setdefault((path.name, name), []).append(f"{number}: {text.strip()}")
    return found


def test_store_sql_is_portable():
    replacement = {name: fix for name, (_, fix) in {**SQL_RULES, **SOURCE_RULES}.items()}
    replacement[SUBQUERY_RULE] = "FROM (…) AS src"
    bad = [f"store/{module} [{rule}] {place}  -> use {replacement[rule]}"
           for (module, rule), places in sorted(findings().items())
           if (module, rule) not in ALLOWED for place in places]
    assert not bad, "SQLite-only SQL in the store:\n" + "\n".join(bad)


def test_allow_list_has_no_stale_entries():
    stale = sorted(set(ALLOWED) - set(findings()))
    assert not stale, f"remove these ALLOWED entries, their places are portable now: {stale}"


def test_the_lint_catches_each_construct():
    samples = {
        "where-1": "SELECT x FROM t WHERE 1 AND y = ?",
        "not-coalesce-0": "NOT coalesce(a = 1, 0)",
        "last_insert_rowid": "SELECT last_insert_rowid()",
        "limit-minus-1": "SELECT x FROM t LIMIT -1",
        "iif": "iif(a IS NULL, NULL, 'text')",
        "char()": "group_concat(g, char(31))",
        "sum-of-boolean": "coalesce(sum(r.outcome = 'success'), 0)",
        "scalar-max-min": "SET a = max(a, :inc)",
        "untyped-select-param": "WITH RECURSIVE c(id) AS (SELECT ? UNION SELECT 1)",
        "param-is-null": "AND (? IS NULL OR x = ?)",
        "unqualified-upsert-column": "ON CONFLICT (k) DO UPDATE SET sent = sent + excluded.sent",
    }
    for name, sql in samples.items():
        assert SQL_RULES[name][0].search(sql), name
    portable = {
        "where-1": "SELECT x FROM t WHERE 1 = 1",
        "scalar-max-min": "SELECT max(id), min(id) FROM t",
        "param-is-null": "WHERE x IS NULL AND coalesce(?, y) IS NOT NULL",
        "unqualified-upsert-column": "DO UPDATE SET sent = channel_sends.sent + excluded.sent",
        "untyped-select-param": "(SELECT CAST(? AS BIGINT) UNION SELECT 1)",
        "sum-of-boolean": "SELECT coalesce(sum(sent), 0) FROM t",
    }
    for name, sql in portable.items():
        assert not SQL_RULES[name][0].search(sql), name
    assert _unaliased_subqueries("SELECT count(*) FROM ({})") == ["FROM ({})"]
    assert _unaliased_subqueries("SELECT * FROM (SELECT 1) WHERE x") == ["FROM (SELECT 1)"]
    assert not _unaliased_subqueries("SELECT count(*) FROM ({}) AS src")
    assert not _unaliased_subqueries("SELECT s.* FROM ({}) s JOIN c ON c.id = s.id")
    assert not _unaliased_subqueries("x IN (SELECT value FROM json_each(?))")
