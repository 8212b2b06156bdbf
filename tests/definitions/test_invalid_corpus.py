"""The invalid corpus: every file states its errors (`# expect: LINE:COL fragment`) and the
validator must report exactly those, at those positions, in one run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Store-agnostic: validate reads definition files only.
pytestmark = pytest.mark.store_agnostic

CORPUS = Path(__file__).parent / "invalid"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")
FILES = sorted(CORPUS.glob("*.yaml"))


def expectations(path: Path) -> list[tuple[int, int, str]]:
    found = []
    for line in path.read_text().splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), match.group(3).strip()))
    return found


def test_corpus_is_large_enough():
    assert len(FILES) >= 40
    assert all(expectations(f) for f in FILES), "every corpus file needs an # expect: line"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_each_invalid_file_reports_exactly_its_errors(cli, path):
    result = cli("validate", "--format", "json", str(path))
    assert result.exit_code == 1, result
    errors = result.json["errors"]
    got = [(e["line"], e["col"], e["message"]) for e in errors]
    assert all(e["file"] == str(path) for e in errors)
    expected = expectations(path)
    for line, col, fragment in expected:
        assert any((ln, c) == (line, col) and fragment in m for ln, c, m in got), (
            f"expected {line}:{col} {fragment!r}, got {got}")
    assert len(got) == len(expected), f"unexpected extra errors: {got}"
    assert "Traceback" not in result.stderr


def test_whole_corpus_in_one_run_reports_every_file(cli):
    result = cli("validate", "--format", "json", str(CORPUS))
    assert result.exit_code == 1, result
    files = {e["file"] for e in result.json["errors"]}
    # One run, every file: references are resolved across the whole corpus, so only the files
    # whose errors are about references may be satisfied by objects defined elsewhere.
    missing = {str(f) for f in FILES} - files
    assert not missing, missing
