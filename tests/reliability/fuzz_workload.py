"""Fuzzed definitions and imports, as figures.

`measure(workdir, size=...)` takes every document of the valid examples in `plans/` (all five
kinds), mutates each case with a seeded random generator — keys deleted or renamed, values
swapped for other types, YAML 1.1 traps (`9:00`, `on`, `NO`, `0755`, naive datetimes), duplicate
keys, huge numbers, unicode and control characters, deep nesting, tags (`!!python/...`, `!!binary`,
unknown), anchors and alias bombs, truncation, random bytes, invalid UTF-8 — and runs
`campctl validate` and `campctl apply` on it in-process (`campctl.__main__.main`). Then fuzzed
CSV and JSON Lines files through `contacts import`.

Every case must exit 0 or 1 (imports: 0, 1 or 2) with `error:`/issue lines and no traceback; an
apply that fails leaves the dump of the state file unchanged (every failed apply at small size,
a sample at full size); validate and apply agree (apply never accepts what validate rejects).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
import sqlite3
import sys
import time
from pathlib import Path

import yaml
from workload_support import dump

PLANS = Path(__file__).resolve().parents[2] / "plans"
SIZES = {"small": {"yaml": 300, "imports": 100, "dump_every": 1},
         "full": {"yaml": 10_000, "imports": 2_000, "dump_every": 5}}
NOW = "2027-03-01T09:00:00Z"

TRAPS = ["9:00", "17:30", "on", "off", "NO", "yes", "0755", "1.10", "2024-03-10 02:30:00",
         "2027-02-30T10:00", "1e309", "-1e999", ".inf", ".nan", "0x1F", "1_000", "~", "null",
         "'09:00-17:00'", "09:00-17:00", "* * * * *", "0 0 31 2 *", "61 * * * *", "${X}", "${",
         "{{ x", "{{ ''.__class__ }}", "{% for i in range(10**9) %}x{% endfor %}", "end",
         "outbox", "-1", "0", "99999999999999999999999999999999", "''", '""', "[]", "{}",
         "\"\\u0000\"", "\"\\ud800\"", "é", "🙂" * 3, "x" * 5000, "Europe/Nowhere", "UTC",
         "30s", "0s", "-5m", "1w", "2d", "one-off", "recurrent", "event", "a b", "UPPER"]
TAGS = ["!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system",
        "!!binary aGVsbG8=", "!custom x", "!!set {a, b}", "!!omap [a: 1]", "!!timestamp 2027-01-01",
        "!!int '12'", "!!float 1", "!!str 9:00", "!!bool yes", "!<tag:yaml.org,2002:str> x"]
BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n")


def examples() -> list[str]:
    """The YAML text of every document in plans/ (all five kinds)."""
    docs = []
    for path in sorted(PLANS.rglob("*.yaml")):
        for part in path.read_text().split("\n---"):
            if "kind:" in part:
                docs.append(part.strip("-\n") + "\n")
    return docs


# --- mutations --------------------------------------------------------------------------------

def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _junk(rng: random.Random):
    pick = rng.randrange(9)
    if pick == 0:
        return rng.choice([None, True, False, 0, -1, 10**30, 1.5, float("inf")])
    if pick == 1:
        return rng.choice(TRAPS)
    if pick == 2:
        return [rng.choice(TRAPS) for _ in range(rng.randrange(4))]
    if pick == 3:
        return {rng.choice(["a", "kind", "name", "op", "value"]): rng.choice(TRAPS)}
    if pick == 4:
        return "".join(chr(rng.randrange(1, 0x2FFFF)) for _ in range(rng.randrange(1, 20)))
    if pick == 5:
        return rng.randrange(-10**40, 10**40)
    if pick == 6:
        deep = rng.choice(TRAPS)
        for _ in range(rng.randrange(1, 60)):
            deep = [deep] if rng.random() < 0.5 else {"x": deep}
        return deep
    if pick == 7:
        return "".join(rng.choice("{}[]:#&*!|>'\"%@`,-? \t\n") for _ in range(rng.randrange(1, 12)))
    return rng.choice(["", " ", "\x00", "\x7f", "\u202e", "\ufeff", "a\nb"])


def structural(doc: dict, rng: random.Random):
    # At most 2000 paths: an alias bomb expands to millions of nodes when walked.
    paths = [p for p in itertools.islice(_paths(doc), 2000) if p]
    if not paths:
        return _junk(rng)
    path = rng.choice(paths)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    action = rng.choice(["delete", "replace", "replace", "rename", "insert"])
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = _junk(rng)
    elif action == "rename" and isinstance(parent, dict):
        parent[rng.choice([f"{last}x", str(last).upper(), f" {last}", "kind", "name"])] = \
            parent.pop(last)
    elif isinstance(parent, dict):
        parent[rng.choice(["extra", "x-y", "kind", "stages", "steps", "rules"])] = _junk(rng)
    else:
        parent.insert(last, _junk(rng))
    return doc


def _replace_value(text: str, rng: random.Random, value: str) -> str:
    lines = text.splitlines()
    spots = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
    if not spots:
        return text + value
    i = rng.choice(spots)
    key = lines[i].split(":", 1)[0]
    lines[i] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


def textual(text: str, rng: random.Random) -> str | bytes:
    if not text.strip():  # an earlier round cut everything
        return rng.choice(["", "---\n", "x", "kind: Segment\n"])
    pick = rng.randrange(12)
    if pick == 0:
        return text[: rng.randrange(len(text) + 1)]
    if pick == 1:
        return _replace_value(text, rng, rng.choice(TRAPS))
    if pick == 2:
        return _replace_value(text, rng, rng.choice(TAGS))
    if pick == 3:  # a duplicate key
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        return "\n".join([*lines[: i + 1], lines[i], *lines[i + 1:]]) + "\n"
    if pick == 4:
        return text + BOMB if rng.random() < 0.5 else BOMB + text
    if pick == 5:
        depth = rng.choice([50, 500, 5000])
        return _replace_value(text, rng, "[" * depth + "]" * depth * rng.randrange(2))
    if pick == 6:  # random bytes, possibly invalid UTF-8
        data = bytearray(text.encode())
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data) + 1):0] = bytes(rng.randrange(256)
                                                        for _ in range(rng.randrange(1, 6)))
        return bytes(data)
    if pick == 7:
        return rng.choice(["", "---\n", "...\n", "---\n---\n", "kind: \n", "- a\n- b\n", "x",
                           "\ufeff" + text, text.replace("\n", "\r\n"), text.replace("  ", "\t"),
                           "%YAML 1.1\n---\n" + text, "%TAG ! tag:x,2000:\n---\n" + text])
    if pick == 8:  # anchors and aliases shared between keys
        return _replace_value(text, rng, "&x " + rng.choice(TRAPS)) + "extra: *x\n"
    if pick == 9:
        return text + "\n---\n" + text  # the same object twice
    if pick == 10:
        return text.replace("name: ", "name: " + rng.choice(["", "X", "a" * 70, "-a", "é", "a/b"]),
                            1)
    return _replace_value(text, rng, json.dumps(_junk(rng), default=str))


def mutate(text: str, rng: random.Random) -> str | bytes:
    rounds = rng.choice([1, 1, 1, 2, 3])
    out: str | bytes = text
    for _ in range(rounds):
        if isinstance(out, bytes):
            break
        if rng.random() < 0.45:
            try:
                doc = yaml.safe_load(out)
                if isinstance(doc, dict):
                    doc = structural(doc, rng)
            except (yaml.YAMLError, RecursionError):  # deep nesting made by an earlier round
                doc = None
            if isinstance(doc, dict):
                try:
                    out = yaml.safe_dump(doc, allow_unicode=rng.random() < 0.5, sort_keys=False)
                except (yaml.YAMLError, RecursionError, ValueError):
                    out = textual(out, rng)
                continue
        out = textual(out, rng)
    return out


# --- running ----------------------------------------------------------------------------------

def run(argv: list[str]) -> tuple[int, str, str]:
    """campctl in-process: (exit code, stdout, stderr)."""
    from campctl.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # pragma: no cover - main() returns codes
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _output_problems(code: int, err: str, allowed: tuple[int, ...]) -> list[str]:
    problems = []
    if code not in allowed:
        problems.append(f"exit {code}")
    if "Traceback" in err or "internal error" in err:
        problems.append("traceback")
    if code != 0 and not err.strip():
        problems.append("failed without a message")
    return problems


class Figures:
    def __init__(self) -> None:
        self.yaml_inputs = self.csv_jsonl_inputs = 0
        self.valid = self.rejected = self.applied = self.apply_refused = 0
        self.tracebacks = self.bad_exit = self.state_changed = self.disagree = 0
        self.dumps_compared = 0
        self.examples: list[str] = []

    def problem(self, what: str, case: int, detail: str, text) -> None:
        if len(self.examples) < 5:
            sample = text if isinstance(text, str) else text.decode("utf-8", "replace")
            self.examples.append(f"case {case} {what}: {detail} | input {sample[:160]!r}")


def _yaml_cases(workdir: Path, cases: int, dump_every: int, rng: random.Random,
                f: Figures) -> None:
    docs = examples()
    state = workdir / "fuzz.db"
    base = ["--state", str(state), "--now", NOW, "--as", "fuzz"]
    code, _, err = run([*base, "apply", str(PLANS)])
    if code != 0:
        raise RuntimeError(f"apply plans/ failed: {err}")
    source = workdir / "case.yaml"
    for case in range(cases):
        text = mutate(rng.choice(docs), rng)
        if isinstance(text, bytes):
            source.write_bytes(text)
        else:
            source.write_text(text, encoding="utf-8", errors="surrogatepass")
        f.yaml_inputs += 1
        v_code, _, v_err = run([*base, "validate", str(source)])
        problems = _output_problems(v_code, v_err, (0, 1))
        f.valid += v_code == 0
        f.rejected += v_code == 1
        before = dump(state) if case % dump_every == 0 else None
        a_code, _, a_err = run([*base, "apply", str(source)])
        problems += [f"apply {p}" for p in _output_problems(a_code, a_err, (0, 1))]
        f.applied += a_code == 0
        f.apply_refused += a_code != 0
        if v_code != 0 and a_code == 0:
            f.disagree += 1
            problems.append("apply accepted what validate rejected")
        if a_code != 0 and before is not None:
            f.dumps_compared += 1
            if dump(state) != before:
                f.state_changed += 1
                problems.append("state changed by a failed apply")
        if problems:
            f.tracebacks += any("traceback" in p for p in problems)
            f.bad_exit += any(p.startswith(("exit", "apply exit")) for p in problems)
            f.problem("yaml", case, ", ".join(problems) + f" {(v_err + a_err)[-200:]!r}", text)


CELLS = ["", "1", "007", "1.5", "true", "NO", "a;b", '"', "\x00", "é", "-1e999", "x@y", "c1",
         "9:00", "2027-02-30", "=cmd()", "\u202e", "a\nb", "1e309", " ", "vip;newsletter"]
HEADERS = ["id", "email", "groups", "opt_out", "plan", "x", "", "phone", "first_name", "ID",
           "email", "created_at"]
JSON_LINES = ['{"id": "a"}', '{"id": 1}', '{"id": "b", "groups": "x"}', "[]", "null", "{",
              '{"id": "c", "opt_out": [1, 2]}', '{"id": "d", "email": {"a": 1}}', '{"id": ""}',
              '{"id": "e", "plan": [1, {"x": null}]}', '{"id": "f", "id": "g"}', '"str"', "1e999",
              '{"id": "h", "attrs": {"' + "k" * 300 + '": 1}}', '{"id": "i\\u0000"}', "\ufeff{}",
              '{"id": "j", "groups": ["a", 1, null]}', '{"id": "k", "email": "k@example.org"}']


def _cell(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(CELLS)
    return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(8)))


def _import_cases(workdir: Path, cases: int, rng: random.Random, f: Figures) -> None:
    for case in range(cases):
        state = workdir / f"import-{case % 20}.db"  # a few states, so rows meet existing ones
        base = ["--state", str(state), "--now", NOW, "--as", "fuzz"]
        if rng.random() < 0.5:
            source = workdir / "case.csv"
            header = [rng.choice(HEADERS) for _ in range(rng.randrange(7))]
            rows = [[_cell(rng) for _ in range(rng.randrange(7))] for _ in range(rng.randrange(9))]
            data = (",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode(
                "utf-8", "surrogatepass")
            if rng.random() < 0.3:
                data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
            if rng.random() < 0.1:
                data = data[: rng.randrange(len(data) + 1)]
        else:
            source = workdir / "case.jsonl"
            lines = [rng.choice(JSON_LINES) if rng.random() < 0.7 else _cell(rng)
                     for _ in range(rng.randrange(9))]
            data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        source.write_bytes(data)
        f.csv_jsonl_inputs += 1
        before = dump(state) if state.exists() else None
        code, _, err = run([*base, "contacts", "import", str(source)])
        problems = _output_problems(code, err, (0, 1, 2))
        if code not in (0,) and before is not None and dump(state) != before:
            f.state_changed += 1
            problems.append("state changed by a failed import")
        if state.exists():
            conn = sqlite3.connect(state)
            try:
                if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    problems.append("integrity_check failed")
            finally:
                conn.close()
        if problems:
            f.tracebacks += "traceback" in problems
            f.bad_exit += any(p.startswith("exit") for p in problems)
            f.problem("import", case, ", ".join(problems) + f" {err[-200:]!r}", data)


def measure(workdir: Path, *, size: str = "small", seed: int = 0) -> dict:
    started = time.perf_counter()
    cfg = SIZES[size]
    rng = random.Random(seed)
    workdir = Path(workdir)
    f = Figures()
    limit = sys.getrecursionlimit()
    _yaml_cases(workdir, cfg["yaml"], cfg["dump_every"], rng, f)
    _import_cases(workdir, cfg["imports"], rng, f)
    sys.setrecursionlimit(limit)
    bad = f.tracebacks + f.bad_exit + f.state_changed + f.disagree
    return {
        "yaml_inputs": f.yaml_inputs, "csv_jsonl_inputs": f.csv_jsonl_inputs,
        "valid": f.valid, "rejected": f.rejected, "applied": f.applied,
        "apply_refused": f.apply_refused, "tracebacks": f.tracebacks,
        "wrong_exit_codes": f.bad_exit, "validate_apply_disagree": f.disagree,
        "failed_apply_dumps_compared": f.dumps_compared,
        "state_changed_after_failed_apply": f.state_changed,
        "first_problems": " | ".join(f.examples) or "none",
        "seconds": round(time.perf_counter() - started, 1),
        "ok": bad == 0 and f.yaml_inputs > 0 and f.rejected > 0 and f.valid > 0,
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="campctl-fuzz-") as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small"),
                         indent=2))
