"""Audiences: streaming contact import (CSV, JSON Lines), audience counts and queue building."""

from __future__ import annotations

import codecs
import csv
import gc
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from campctl.errors import UsageProblem, ValidationFailed
from campctl.store import contacts as contacts_store
from campctl.store import queue as queue_store
from campctl.store import segments
from campctl.store.contacts import ContactRow
from campctl.store.db import Database

message_id_for = queue_store.message_id_for
AudienceQuery = segments.AudienceQuery
RunItems = queue_store.RunItems

CHUNK_ROWS = 5000
MAX_ERRORS_KEPT = 10_000
MAX_ID_LENGTH = 255
MAX_JSON_DEPTH = 32
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
RESERVED = ("id", "email", "phone", "groups", "opt_out")

_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_DEC = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+$")
_SURROGATE = re.compile("[\udc80-\udcff]")
_BAD_NAME = re.compile(r'["\\\x00-\x1f]')
_EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+$")
# PostgreSQL's text holds no NUL and its jsonb no \u0000: no imported value may hold one, on
# either store (the same file imports the same way everywhere).
NUL = "\x00"
NUL_PROBLEM = "contains a NUL (U+0000) control character"


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)
    errors_omitted: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"line": line, "reason": reason})
        else:
            self.errors_omitted += 1

    def as_json(self) -> dict:
        out = {"inserted": self.inserted, "updated": self.updated, "rejected": self.rejected,
               "errors": self.errors}
        if self.errors_omitted:
            out["errors_omitted"] = self.errors_omitted
        return out


class RowRejected(Exception):
    pass


class _NulFound(RowRejected):
    """A NUL somewhere inside a JSON value; the caller names the field."""

    def __init__(self) -> None:
        super().__init__(NUL_PROBLEM)


class _Undecodable:
    """How many undecodable byte runs the import's decoder has met in this process: rows are
    searched for the escapes of bad bytes only once their file has had one."""

    count = 0

    @staticmethod
    def escape(error: UnicodeError) -> tuple[str | bytes, int]:
        _Undecodable.count += 1
        return _surrogateescape(error)


_surrogateescape = codecs.lookup_error("surrogateescape")
# surrogateescape keeps a bad byte inside its row (as \udc80-\udcff), so that row alone is
# rejected; this name also counts it.
_DECODE_ERRORS = "campctl-import-surrogateescape"
codecs.register_error(_DECODE_ERRORS, _Undecodable.escape)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while rows stream: they hold no cycles (reference counts
    free them), and its passes, every 700 allocations, took 12-15% of an import's CPU time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _CountingReader(io.RawIOBase):
    """Counts bytes read so a progress bar can follow a streamed file."""

    def __init__(self, raw: io.RawIOBase, progress: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.progress = progress
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        count = self.raw.readinto(buffer)
        self.position += count or 0
        if self.progress is not None and count:
            self.progress(self.position)
        return count


def detect_format(path: Path, explicit: str | None) -> str:
    if explicit:
        if explicit not in ("csv", "jsonl"):
            raise UsageProblem(f"--format must be csv or jsonl, not {explicit!r}")
        return explicit
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageProblem(
            f"cannot tell the format of {path.name} from its extension; "
            "use .csv, .jsonl or .ndjson, or give --format csv|jsonl"
        )
    return fmt


def import_contacts(
    db: Database,
    path: Path,
    *,
    now: datetime,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
    rows_done: Callable[[int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Stream `path` into the contacts, one transaction per chunk of rows.

    A crash loses at most the chunk in progress, never half a row; the import is an idempotent
    upsert, so running it again completes it. `progress(bytes_read)` follows the file;
    `rows_done(rows)` is told how many rows were read (imported or rejected) after each chunk.
    Raises ValidationFailed (nothing imported) when the file cannot be read as a whole: missing
    `id` column, bad header, undecodable header.
    """
    kind = detect_format(path, fmt)
    try:
        raw = path.open("rb", buffering=0)  # unbuffered: _CountingReader is read through one buffer
    except FileNotFoundError as exc:
        raise UsageProblem(f"no such file: {path}") from exc
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror}") from exc
    report = ImportReport()
    with raw, _no_cycle_collection(), contacts_store.import_session(db):
        counted = io.BufferedReader(_CountingReader(raw, progress), buffer_size=1 << 16)
        text = io.TextIOWrapper(counted, encoding="utf-8-sig", errors=_DECODE_ERRORS,
                                newline="" if kind == "csv" else None)
        rows = _csv_rows(text, path, report) if kind == "csv" else _jsonl_rows(text, report)
        while chunk := list(islice(rows, chunk_rows)):
            _flush(db, chunk, report, now)
            if rows_done is not None:
                rows_done(report.inserted + report.updated + report.rejected)
    if rows_done is not None:
        rows_done(report.inserted + report.updated + report.rejected)  # trailing rejected rows
    return report


def _flush(db: Database, chunk: list[ContactRow], report: ImportReport, now: datetime) -> None:
    if not chunk:
        return
    with db.atomic():
        inserted, updated = contacts_store.upsert_chunk(db, chunk, now=now)
    report.inserted += inserted
    report.updated += updated


# --- CSV ---------------------------------------------------------------------------------------


def _csv_rows(text: io.TextIOBase, path: Path, report: ImportReport) -> Iterator[ContactRow]:
    undecodable = _Undecodable.count  # before the decoder has read anything
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationFailed(f"{path}: line 1: cannot read the CSV header: {exc}") from exc
    if header is None:
        raise ValidationFailed(
            f"{path} is empty; a CSV import needs a header row with an id column"
        )
    header = [h.strip() for h in header]
    problem = _header_problem(header)
    if problem:
        raise ValidationFailed(f"{path}: line 1: {problem}")
    width = len(header)
    contact = _row_reader(header)
    search_surrogate = _SURROGATE.search
    join = "".join
    last_line = reader.line_num
    while True:
        try:
            for values in reader:  # a for loop: no next() call per row
                start = last_line + 1
                last_line = reader.line_num
                try:
                    if len(values) != width or width == 1:
                        if not values or (len(values) == 1 and values[0] == ""):
                            continue  # blank line
                        if len(values) != width:
                            raise RowRejected(f"{len(values)} fields, but the header has {width}")
                    if _Undecodable.count != undecodable and search_surrogate(join(values)):
                        raise RowRejected("not valid UTF-8")
                    yield contact(start, values)
                except RowRejected as exc:
                    report.reject(start, str(exc))
            return
        except csv.Error as exc:  # the reader goes on with the next line
            start = last_line + 1
            last_line = reader.line_num
            report.reject(start, f"malformed CSV: {exc}")


def _header_problem(header: list[str]) -> str | None:
    if any(_SURROGATE.search(h) for h in header):
        return "the header is not valid UTF-8"
    if "id" not in header:
        return "no id column; the header must name an id column (the contact's external id)"
    if "" in header:
        return f"column {header.index('') + 1} has no name"
    seen = set()
    for name in header:
        if name in seen:
            return f"column {name!r} appears twice"
        seen.add(name)
        if _BAD_NAME.search(name):
            return f"column name {name!r} may not contain quotes, backslashes or control characters"
    return None


_NUMBER_START = frozenset("-0123456789")
_CACHED_CELLS = 4096  # distinct cells remembered per column (plans, countries, dates repeat)


def _typed(value: str) -> Any:
    """CSV cell → JSON value: integers (no leading zeros, so zip codes stay text), decimals,
    true/false; anything else stays text."""
    first = value[0]
    if first in _NUMBER_START:
        if _INT.match(value):
            if len(value) > 20:  # beyond 64 bits (and int() refuses 4,300 digits): text
                return value
            number = int(value)
            return number if -(1 << 63) <= number < (1 << 63) else value
        if _DEC.match(value):
            decimal = float(value)
            return decimal if math.isfinite(decimal) else value
        return value
    if len(value) in (4, 5):
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return value


def _split(cell: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in cell.split(";"):
        part = part.strip()
        if part:
            seen[part] = None
    return list(seen)


def _row_reader(header: list[str]) -> Callable[[int, list[str]], ContactRow]:
    """The function that reads one CSV row of this header, by column positions (no dict per
    row; the positions and caches are its locals).

    Attributes go straight to their JSON text (`"name":value` members joined), each column
    remembering the text of the cells it has seen: most columns repeat a few values.
    """

    def pos(name: str) -> int:
        return header.index(name) if name in header else -1

    id_at, email_at, phone_at, groups_at, opt_out_at = (
        pos("id"), pos("email"), pos("phone"), pos("groups"), pos("opt_out"))
    members: list[tuple[int, str, dict[str, str]]] = [
        (i, _encode_text(name) + ":", {}) for i, name in enumerate(header)
        if name not in RESERVED]
    sets: dict[str, list[str]] = {}
    email_ok = _EMAIL.match
    join = ",".join
    new_row = tuple.__new__  # a NamedTuple without its keyword handling: once per row

    def member(prefix: str, seen: dict[str, str], value: str) -> str:
        # Only cells not seen before come here: a rejected cell is never remembered.
        if NUL in value:
            raise RowRejected(f"attribute {json.loads(prefix[:-1])!r} {NUL_PROBLEM}")
        typed = _typed(value)
        text = prefix + (_encode_text(value) if typed is value else _encode_value(typed))
        if len(seen) < _CACHED_CELLS:
            seen[value] = text
        return text

    def cell_set(cell: str, name: str) -> list[str] | None:
        if not cell.strip():
            return None
        # Shared between rows with the same cell: the list is only read.
        found = sets.get(cell)
        if found is None:
            if NUL in cell:
                raise RowRejected(f"{name} {NUL_PROBLEM}")
            found = _split(cell)
            if len(sets) < _CACHED_CELLS:
                sets[cell] = found
        return found

    def contact(line: int, values: list[str]) -> ContactRow:
        external_id = values[id_at].strip()
        # isprintable() is false for every control character (and a few other characters that
        # _check_id accepts): a cheap first test.
        if not external_id or len(external_id) > MAX_ID_LENGTH or not external_id.isprintable():
            _check_id(external_id)
        email = values[email_at].strip() or None if email_at >= 0 else None
        if email is not None and not email_ok(email):
            _check_email(email)
        phone = values[phone_at].strip() or None if phone_at >= 0 else None
        if phone is not None and NUL in phone:
            raise RowRejected(f"phone {NUL_PROBLEM}")
        attrs = [seen.get(value) or member(prefix, seen, value)
                 for i, prefix, seen in members if (value := values[i])]
        return new_row(ContactRow, (
            line, external_id, email, email is not None, phone, phone is not None,
            "{" + join(attrs) + "}",
            cell_set(values[groups_at], "groups") if groups_at >= 0 else None,
            cell_set(values[opt_out_at], "opt_out") if opt_out_at >= 0 else None))

    return contact


_encode_text = json.encoder.encode_basestring
_encode_value = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _check_id(external_id: str) -> None:
    if not external_id:
        raise RowRejected("id is empty")
    if len(external_id) > MAX_ID_LENGTH:
        raise RowRejected(f"id is longer than {MAX_ID_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in external_id):
        # A control character (NUL above all) is no one's id, and SQLite's JSON functions,
        # which the import's set-based statements use, cut text at a NUL.
        raise RowRejected("id contains a control character")


def _check_email(email: str) -> None:
    if NUL in email:
        raise RowRejected(f"email {NUL_PROBLEM}")
    if not _EMAIL.match(email):
        raise RowRejected(f"invalid email {email!r}")


# --- JSON Lines --------------------------------------------------------------------------------


def _jsonl_rows(text: io.TextIOBase, report: ImportReport) -> Iterator[ContactRow]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            if _SURROGATE.search(line):
                raise RowRejected("not valid UTF-8")
            try:
                obj = json.loads(line, parse_constant=_refuse_constant)
            except json.JSONDecodeError as exc:
                raise RowRejected(f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
            except RecursionError as exc:
                raise RowRejected(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
            except ValueError as exc:  # an integer of more than 4,300 digits
                raise RowRejected("a number is out of range") from exc
            if not isinstance(obj, dict):
                raise RowRejected("not a JSON object")
            _check_json_value(obj, 0)
            yield _json_contact(number, obj)
        except RowRejected as exc:
            report.reject(number, str(exc))


def load_json_value(text: str) -> Any:
    """JSON text as a value SQLite's JSON can hold (see `_check_json_value`); ValueError with
    the reason otherwise. For JSON given on the command line (`events emit --data`)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
        _check_json_value(value, 0)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except RowRejected as exc:
        raise ValueError(str(exc)) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ValueError("a number is out of range") from exc
    return value


def _refuse_constant(name: str) -> Any:
    raise RowRejected(f"{name} is not a JSON number; write null or a finite number")


def _check_json_value(value: Any, depth: int) -> None:
    """What SQLite's JSON and the segment queries can hold: bounded nesting, 64-bit integers,
    finite numbers, text that encodes as UTF-8 (no lone surrogates) and holds no NUL (which
    PostgreSQL's text and jsonb refuse)."""
    if depth > MAX_JSON_DEPTH:
        raise RowRejected(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if NUL in value:
            raise _NulFound
        if not _encodable(value):
            raise RowRejected("text with a lone surrogate (\\ud800-\\udfff) is not valid "
                              "Unicode")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 63):
            raise RowRejected("an integer is out of range (more than 64 bits)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RowRejected("a number is out of range")
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(key):
                raise RowRejected("a key with a lone surrogate is not valid Unicode")
            if depth:
                if NUL in key:
                    raise _NulFound
                _check_json_value(item, depth + 1)
                continue
            # A top-level key is the field a NUL is reported in.
            if NUL in key:
                raise RowRejected(f"field name {key!r} {NUL_PROBLEM}")
            try:
                _check_json_value(item, 1)
            except _NulFound:
                raise RowRejected(f"{key} {NUL_PROBLEM}") from None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_contact(line: int, obj: dict) -> ContactRow:
    if "id" not in obj:
        raise RowRejected("no id")
    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise RowRejected("id must be a string")
    external_id = str(raw_id).strip()
    _check_id(external_id)
    email = _json_text(obj, "email")
    if email:
        _check_email(email)
    phone = _json_text(obj, "phone")
    groups = _json_list(obj, "groups")
    opt_out = _json_list(obj, "opt_out")
    attrs = {}
    for key, value in obj.items():
        if key in RESERVED:
            continue
        if not key.strip() or _BAD_NAME.search(key):
            raise RowRejected(f"attribute name {key!r} is empty or has quotes/control characters")
        attrs[key] = value
    return ContactRow(line, external_id, email or None, "email" in obj, phone or None,
                      "phone" in obj, attrs, groups, opt_out)


def _json_text(obj: dict, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowRejected(f"{key} must be a string")
    return value.strip() or None


def _json_list(obj: dict, key: str) -> list[str] | None:
    if key not in obj:
        return None
    value = obj[key]
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RowRejected(f"{key} must be a list of strings")
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


# --- audiences and queues ----------------------------------------------------------------------


def count_audience(
    db: Database,
    audience: Mapping,
    *,
    now: datetime,
    message_type: str | None = None,
    include_opted_out: bool = False,
    sample_key: str | None = None,
) -> int:
    query = segments.AudienceQuery(audience, message_type, include_opted_out, sample_key)
    sql, params = segments.audience_query(db, query, now=now)
    return segments.count_query(db, sql, params)


def channel_needs_email(db: Database, channel: str) -> bool:
    """Only SMTP channels need an address; outbox and webhook take every contact."""
    return channel != "outbox" and queue_store.channel_type(db, channel) == "smtp"


def build_queue(db: Database, query: segments.AudienceQuery, items: queue_store.RunItems, *,
                now: datetime) -> int:
    """Create the run's queue items (status `queued`, message type `query.message_type`) in
    set-based chunks; returns how many were new. Idempotent: building the same run again
    inserts nothing twice.

    `items.require_email=None` decides from the channel (SMTP channels need an email; outbox
    and webhook do not). `items.exclude_sent_of_run` skips contacts with a `sent` item in that
    run or in a run it restarts. `query.extra` narrows the audience (the sending rights of the
    campaign's creator).
    """
    if items.require_email is None:
        items = replace(items, require_email=channel_needs_email(db, items.channel))
    return queue_store.insert_run_items(db, query, items, now=now)
