"""Full and read-only disks under the state file and the outbox folder, as figures.

`measure(workdir, size=...)` prepares one state file (contacts imported, an outbox channel with a
JSON Lines `dir:`, a started one-off campaign whose queue the next tick must build and deliver)
and copies it into a fresh folder for every fault:

- state file full, by RLIMIT_FSIZE in the campctl process (works everywhere, also unprivileged):
  a sweep of limits from "cannot even create the -shm file" to "almost enough", so that the
  write fails while opening, while building the queue, while delivering and while recording;
  `tick`, `apply` and `contacts import` under it;
- state file full on a real small tmpfs (a filler file leaves 0 .. N KiB free), and read-only by
  a read-only bind mount; both inside a private mount namespace (`unshare -m`, or `unshare -rm`
  when not root); skipped with the reason when the machine cannot do it;
- the outbox folder full (RLIMIT_FSIZE over a sparse-extended JSONL file; a full tmpfs) and
  read-only (bind mount).

For each: a state-file fault must end with exit 4 and one `error:` line, a failed `apply` /
`contacts import` leaves the dump of the tables unchanged; an outbox fault leaves the items queued
for retry (exit 0, a `warning:` line); never a traceback; `PRAGMA integrity_check` ok; a built run
has its whole queue; the outbox table and the JSONL file hold exactly the sent items (every line
parses, no duplicate). Then, with space back, later ticks deliver every message exactly once.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workload_support import clean_env, dump
from workload_support import iso as _iso

SIZES = {
    "small": {"contacts": 150, "state_limits": 6, "tmpfs_free_kib": [0, 48, 160],
              "import_contacts": 400},
    "full": {"contacts": 2000, "state_limits": 60, "tmpfs_free_kib": [0, 8, 40, 64, 128, 256,
                                                                      512, 1024],
             "import_contacts": 5000},
}
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
CHANNEL = "archive"
DEFINITIONS = """\
kind: Channel
name: archive
type: outbox
dir: out
---
kind: Campaign
name: blast
timezone: UTC
type: one-off
channel: archive
audience: {all: true}
message: {subject: "Hello {{ first_name }}", body: "Dear {{ first_name }}, our news."}
schedule: {queue: immediately, send: after_queue}
"""


def _env() -> dict[str, str]:
    return clean_env("disk-test")


def _limit(size: int):
    def apply() -> None:  # runs in the child: write() past `size` fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def campctl(folder: Path, now: datetime, *args: str, fsize: int | None = None,
            as_user: str | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "campctl", "--state", "s.db", "--now", _iso(now)]
    if as_user:
        argv += ["--as", as_user]
    return subprocess.run([*argv, *args], cwd=folder, capture_output=True, text=True,
                          env=_env(), timeout=300,
                          preexec_fn=_limit(fsize) if fsize is not None else None)


def _must(folder: Path, now: datetime, *args: str, **kw) -> subprocess.CompletedProcess:
    proc = campctl(folder, now, *args, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"campctl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def prepare(workdir: Path, contacts: int) -> Path:
    """A state file whose next tick fires, builds `contacts` items and delivers them."""
    base = workdir / "base"
    base.mkdir(parents=True)
    (base / "contacts.csv").write_text("id,email,first_name\n" + "".join(
        f"c{i:05d},c{i:05d}@example.org,N{i}\n" for i in range(contacts)))
    (base / "defs.yaml").write_text(DEFINITIONS)
    _must(base, T0, "init")
    _must(base, T0, "contacts", "import", "contacts.csv")
    _must(base, T0, "apply", "defs.yaml")
    _must(base, T0, "submit", "campaign", "blast")
    _must(base, T0, "approve", "campaign", "blast", as_user="approver")
    _must(base, T0, "start", "campaign", "blast")
    return base


def fresh(base: Path, folder: Path) -> Path:
    shutil.copytree(base, folder)
    return folder


# --- checks -----------------------------------------------------------------------------------

def stderr_problems(proc_or_pair, allowed: tuple[int, ...]) -> list[str]:
    """Exit code in `allowed`; no traceback; a failure says `error:` once (and nothing else but
    `warning:` lines)."""
    code, err = (proc_or_pair.returncode, proc_or_pair.stderr) \
        if hasattr(proc_or_pair, "returncode") else proc_or_pair
    problems = []
    if code not in allowed:
        problems.append(f"exit {code} not in {allowed}: {err.strip()[:300]}")
    if "Traceback" in err or "internal error" in err:
        problems.append(f"traceback/internal error: {err.strip()[-300:]}")
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 0 and any(not line.startswith(("error:", "warning:")) for line in lines):
        problems.append(f"stray stderr: {err.strip()[:300]}")
    if code != 0 and sum(line.startswith("error:") for line in lines) != 1:
        problems.append(f"exit {code} without exactly one error line: {err.strip()[:300]}")
    return problems


def jsonl_ids(path: Path) -> tuple[list[str], int]:
    """(message ids in the JSONL file in order, lines that do not parse)."""
    if not path.exists():
        return [], 0
    ids, bad = [], 0
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            ids.append(json.loads(line)["message_id"])
        except (ValueError, KeyError, TypeError):
            bad += 1
    return ids, bad


def consistency(folder: Path, contacts: int, extra_jsonl: list[str] | None = None) -> list[str]:
    """Integrity, all-or-nothing queues, outbox == sent items == JSONL lines."""
    problems = []
    conn = sqlite3.connect(folder / "s.db")
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("integrity_check failed")
        for run_id, built in conn.execute("SELECT id, built_at FROM runs"):
            items = conn.execute("SELECT count(*) FROM queue_items WHERE run_id = ?",
                                 (run_id,)).fetchone()[0]
            if built is not None and items != contacts:
                problems.append(f"run {run_id} built with {items} of {contacts} items")
            if built is None and items:
                problems.append(f"run {run_id} not built but has {items} items")
        sent = {m for (m,) in conn.execute(
            "SELECT message_id FROM queue_items WHERE status = 'sent'")}
        outbox = [m for (m,) in conn.execute("SELECT message_id FROM outbox")]
    finally:
        conn.close()
    ids, bad = jsonl_ids(folder / "out" / f"{CHANNEL}.jsonl")
    ids = (extra_jsonl or []) + ids
    if bad:
        problems.append(f"{bad} JSONL line(s) do not parse (half-written)")
    if set(outbox) != sent or len(outbox) != len(sent):
        problems.append(f"outbox rows {len(outbox)} != sent items {len(sent)}")
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} duplicate JSONL line(s)")
    if set(ids) != sent:
        problems.append(f"JSONL holds {len(set(ids))} ids, sent items {len(sent)}")
    return problems


def recover(folder: Path, contacts: int, extra_jsonl: list[str] | None = None) -> tuple[
        list[str], dict]:
    """Ticks with space back (past any retry backoff) until the run completes; exactly once."""
    problems: list[str] = []
    now = T0 + timedelta(minutes=1)
    for step in range(1, 8):
        proc = campctl(folder, now + timedelta(hours=step), "tick")
        problems += stderr_problems(proc, (0,))
        conn = sqlite3.connect(folder / "s.db")
        try:
            left = conn.execute("SELECT count(*) FROM queue_items WHERE status <> 'sent'"
                                ).fetchone()[0]
            items = conn.execute("SELECT count(*) FROM queue_items").fetchone()[0]
        finally:
            conn.close()
        if items == contacts and left == 0:
            break
    problems += consistency(folder, contacts, extra_jsonl)
    conn = sqlite3.connect(folder / "s.db")
    try:
        sent = conn.execute("SELECT count(*) FROM queue_items WHERE status = 'sent'").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        conn.close()
    ids, _ = jsonl_ids(folder / "out" / f"{CHANNEL}.jsonl")
    ids = (extra_jsonl or []) + ids
    counts = {"sent": sent, "jsonl": len(ids), "runs": runs}
    if sent != contacts:
        problems.append(f"after recovery {sent} of {contacts} sent")
        counts["lost"] = contacts - sent
    if runs != 1:
        problems.append(f"{runs} runs for one one-off occurrence")
    return problems, counts


# --- mount namespaces -------------------------------------------------------------------------

def namespace_prefix() -> tuple[list[str] | None, str]:
    """The command that runs a shell in a private mount namespace, or (None, why not)."""
    if not shutil.which("unshare") or not shutil.which("mount"):
        return None, "unshare or mount not installed"
    tried = []
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        proc = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt "
                               "2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return prefix, ""
        tried.append(f"{' '.join(prefix)}: {proc.stderr.strip()[:120]}")
    return None, "no private mount namespace here (" + "; ".join(tried) + ")"


def in_namespace(prefix: list[str], folder: Path, setup: str,
                 commands: list[tuple[datetime, list[str]]], after: str = "",
                 state: str = "s.db") -> list[tuple]:
    """Run `setup` (mounts), then each campctl command, then `after`, all inside one private
    mount namespace; returns [(exit code, stderr)] of the campctl commands."""
    results = folder.parent / f"{folder.name}-results"
    results.mkdir()
    # cd again after the mounts: a cwd taken before a mount still points below it.
    here = f"cd {shlex.quote(str(folder))}"
    lines = ["set -e", here, setup, here, "set +e"]
    for i, (now, args) in enumerate(commands):
        argv = [sys.executable, "-m", "campctl", "--state", state, "--now", _iso(now), *args]
        lines.append(f"{shlex.join(argv)} >{results}/{i}.out 2>{results}/{i}.err; "
                     f"echo $? >{results}/{i}.rc")
    lines.append(after)
    proc = subprocess.run([*prefix, "sh", "-c", "\n".join(lines)], capture_output=True,
                          text=True, env=_env(), timeout=600)
    if not (results / f"{len(commands) - 1}.rc").exists():
        raise RuntimeError(f"namespace script failed: {proc.stderr.strip()[:500]}")
    return [(int((results / f"{i}.rc").read_text()), (results / f"{i}.err").read_text())
            for i in range(len(commands))]


# --- the cases --------------------------------------------------------------------------------

class Tally:
    def __init__(self) -> None:
        self.faults = 0
        self.survived = 0
        self.skipped: list[str] = []
        self.failures: list[str] = []
        self.by_case: dict[str, int] = {}
        self.exit4 = 0
        self.retried_outbox = 0

    def case(self, name: str, problems: list[str]) -> None:
        self.faults += 1
        kind = name.split(" (")[0]
        self.by_case[kind] = self.by_case.get(kind, 0) + 1
        if problems:
            self.failures.append(f"{name}: {'; '.join(problems)[:500]}")
        else:
            self.survived += 1


def _state_full_rlimit(base: Path, work: Path, contacts: int, limits: int, t: Tally) -> None:
    """Tick under RLIMIT_FSIZE values: whatever the phase it stops in, exit 4 (or 0 if it fits)
    and a consistent state; later ticks finish exactly once. Coarse values from "cannot create
    the -shm file" up; then a bisection for the smallest limit at which sends get recorded, and
    dense values just below it, where the JSONL lines are written but their commit fails."""
    done: dict[int, int] = {}

    def one(limit: int) -> int:
        if limit in done:
            return done[limit]
        folder = fresh(base, work / f"full-rlimit-{limit}")
        proc = campctl(folder, T0 + timedelta(minutes=1), "tick", fsize=limit)
        problems = stderr_problems(proc, (0, 4))
        if proc.returncode == 4:
            t.exit4 += 1
            if "state file" not in proc.stderr:
                problems.append(f"error does not name the state file: {proc.stderr.strip()}")
        problems += consistency(folder, contacts)
        conn = sqlite3.connect(folder / "s.db")
        sent = conn.execute("SELECT count(*) FROM queue_items WHERE status = 'sent'").fetchone()[0]
        conn.close()
        more, _ = recover(folder, contacts)
        t.case(f"tick, state full (RLIMIT_FSIZE {limit})", problems + more)
        done[limit] = sent
        shutil.rmtree(folder)
        return sent

    need = (base / "s.db").stat().st_size
    for limit in (1024, 33_000, need // 2, need, need * 2):
        one(limit)
    low, high = need // 2, need * 2  # nothing sent at low; everything at high
    while high - low > 1024:
        mid = (low + high) // 2
        if one(mid):
            high = mid
        else:
            low = mid
    step = max(64, 16 * contacts // limits)
    for k in range(1, limits + 1):
        one(high - k * step)
def _writes_refused(base: Path, work: Path, t: Tally, import_contacts: int,
                    limits: list[int]) -> None:
    """apply and contacts import on a full state file: exit 4 and the tables unchanged (or, when
    the limit leaves room enough, exit 0)."""
    csv = "id,email,first_name,plan\n" + "".join(
        f"n{i:05d},n{i:05d}@example.org,M{i},basic\n" for i in range(import_contacts))
    yaml = "".join(f"---\nkind: Segment\nname: seg-{i}\ndescription: {'x' * 200}\n"
                   f"rules:\n  - {{attr: plan, op: eq, value: v{i}}}\n" for i in range(60))
    for limit in limits:
        for args in (["apply", "more.yaml"], ["contacts", "import", "more.csv"]):
            folder = fresh(base, work / f"writes-{limit}-{args[0]}")
            (folder / "more.csv").write_text(csv)
            (folder / "more.yaml").write_text(yaml)
            before = dump(folder / "s.db")
            proc = campctl(folder, T0, *args, fsize=limit)
            problems = stderr_problems(proc, (0, 4))
            if proc.returncode == 4:
                t.exit4 += 1
                if dump(folder / "s.db") != before:
                    problems.append("tables changed by a failed command")
                proc = campctl(folder, T0, *args)  # space back
                if proc.returncode != 0:
                    problems.append(f"fails after space came back: {proc.stderr.strip()}")
            t.case(f"{' '.join(args[:2])}, state full (RLIMIT_FSIZE {limit})", problems)


def _outbox_full_rlimit(base: Path, work: Path, contacts: int, t: Tally) -> None:
    """The JSONL file cannot grow (sparse-extended to the process's file size limit)."""
    folder = fresh(base, work / "outbox-full-rlimit")
    jsonl = folder / "out" / f"{CHANNEL}.jsonl"
    jsonl.parent.mkdir()
    limit = 256 * 1024 * 1024
    with open(jsonl, "wb") as handle:
        handle.truncate(limit)
    proc = campctl(folder, T0 + timedelta(minutes=1), "tick", fsize=limit)
    problems = stderr_problems(proc, (0,))
    if "warning:" not in proc.stderr or "outbox" not in proc.stderr:
        problems.append(f"no warning names the outbox file: {proc.stderr.strip()[:200]}")
    if jsonl.stat().st_size != limit:
        problems.append("JSONL file changed size under the limit")
    os.truncate(jsonl, 0)  # space back
    problems += _queued_for_retry(folder, contacts, t)
    more, _ = recover(folder, contacts)
    t.case("tick, outbox file full (RLIMIT_FSIZE)", problems + more)


def _queued_for_retry(folder: Path, contacts: int, t: Tally) -> list[str]:
    conn = sqlite3.connect(folder / "s.db")
    try:
        rows = conn.execute("SELECT status, count(*), max(attempts), min(last_error) FROM "
                            "queue_items GROUP BY status").fetchall()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    by_status = {r[0]: r for r in rows}
    problems = []
    if set(by_status) != {"queued"} or by_status["queued"][1] != contacts:
        problems.append(f"items not all queued for retry: {rows}")
    else:
        t.retried_outbox += contacts
    if outbox:
        problems.append(f"{outbox} outbox rows although the file write failed")
    return problems


def _namespace_cases(base: Path, work: Path, contacts: int, free_kib: list[int],
                     t: Tally) -> None:
    prefix, why = namespace_prefix()
    if prefix is None:
        t.skipped.append(f"tmpfs and read-only mounts: {why}")
        if os.geteuid() != 0:
            _readonly_by_mode(base, work, contacts, t)
        else:
            t.skipped.append("read-only by file mode: root ignores modes")
        return
    tick_at = T0 + timedelta(minutes=1)

    # state file on a full tmpfs: the filler leaves `free` KiB
    for free in free_kib:
        folder = fresh(base, work / f"state-tmpfs-{free}")
        keep = work / f"state-tmpfs-{free}-copy"
        keep.mkdir()
        size_kib = (base / "s.db").stat().st_size // 1024 + 64 + free + 4 * contacts // 10 + 512
        setup = (f"mkdir -p db && mount -t tmpfs -o size={size_kib}k tmpfs db && "
                 "cp s.db db/ && (cat /dev/zero > db/fill 2>/dev/null || true) && "
                 f"truncate -s -{free}K db/fill && sync")
        commands = [(T0, ["apply", "defs-more.yaml"]), (T0, ["contacts", "import", "more.csv"]),
                    (tick_at, ["tick"])]
        (folder / "defs-more.yaml").write_text("".join(
            f"---\nkind: Segment\nname: seg-{i}\ndescription: {'x' * 300}\n"
            f"rules:\n  - {{attr: plan, op: eq, value: v{i}}}\n" for i in range(200)))
        (folder / "more.csv").write_text("id,email,first_name\n" + "".join(
            f"n{i:05d},n{i:05d}@example.org,M{i}\n" for i in range(3000)))
        after = f"cp db/s.db db/s.db-wal {keep}/ 2>/dev/null; true"
        out = in_namespace(prefix, folder, setup, commands, after, state="db/s.db")
        problems = []
        for (code, err), (_, args) in zip(out, commands, strict=True):
            problems += [f"{args[0]}: {p}" for p in stderr_problems((code, err), (0, 4))]
            t.exit4 += code == 4
        # The namespace's tmpfs vanished with it: continue from the copy (space is back).
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            (folder / name).unlink(missing_ok=True)
            if (keep / name).exists():
                shutil.copy(keep / name, folder / name)
        apply_code, import_code, _tick_code = (c for c, _ in out)
        conn = sqlite3.connect(folder / "s.db")
        try:
            segments = conn.execute("SELECT count(*) FROM objects WHERE kind = 'Segment'"
                                    ).fetchone()[0]
            imported = conn.execute("SELECT count(*) FROM contacts WHERE external_id LIKE 'n%'"
                                    ).fetchone()[0]
        finally:
            conn.close()
        if segments != (200 if apply_code == 0 else 0):
            problems.append(f"apply exited {apply_code} and left {segments} of 200 segments")
        if imported != (3000 if import_code == 0 else 0):
            problems.append(f"import exited {import_code} and left {imported} of 3000 contacts")
        audience = contacts + imported
        problems += consistency(folder, audience)
        more, _ = recover(folder, audience)
        t.case(f"apply/import/tick, state on a full tmpfs ({free} KiB free)", problems + more)

    # state file read-only (bind mount of its folder)
    folder = fresh(base, work / "state-readonly")
    (folder / "more.csv").write_text("id,email\nr1,r1@example.org\n")
    before = dump(folder / "s.db")
    here = shlex.quote(str(folder))
    setup = f"mount --bind {here} {here} && mount -o remount,ro,bind {here} {here}"
    commands = [(tick_at, ["tick"]), (T0, ["apply", "defs.yaml"]),
                (T0, ["contacts", "import", "more.csv"]),
                (T0, ["config", "set", "four_eyes", "true"])]
    out = in_namespace(prefix, folder, setup, commands)
    for (code, err), (_, args) in zip(out, commands, strict=True):
        problems = stderr_problems((code, err), (4,))
        if code == 4 and "read-only" not in err:
            problems.append(f"error does not say read-only: {err.strip()}")
        t.exit4 += code == 4
        t.case(f"{args[0]}, state read-only (bind mount)", problems)
    problems = [] if dump(folder / "s.db") == before else ["read-only state file changed"]
    more, _ = recover(folder, contacts)
    t.case("recovery after read-only state", problems + more)

    # outbox folder read-only (bind mount)
    folder = fresh(base, work / "outbox-readonly")
    (folder / "out").mkdir()
    out_dir = shlex.quote(str(folder / "out"))
    out = in_namespace(prefix, folder, f"mount --bind {out_dir} {out_dir} && "
                       f"mount -o remount,ro,bind {out_dir} {out_dir}", [(tick_at, ["tick"])])
    problems = stderr_problems(out[0], (0,))
    if "warning:" not in out[0][1]:
        problems.append(f"no warning for the read-only outbox: {out[0][1].strip()}")
    problems += _queued_for_retry(folder, contacts, t)
    more, _ = recover(folder, contacts)
    t.case("tick, outbox folder read-only (bind mount)", problems + more)

    # outbox folder on a small tmpfs: full part-way through the batch; the partial file is kept
    for kib in (16, contacts * 150 // 1024 + 4):  # lines are ~250 bytes: full part-way
        folder = fresh(base, work / f"outbox-tmpfs-{kib}")
        (folder / "out").mkdir()
        keep = work / f"outbox-tmpfs-{kib}-copy"
        keep.mkdir()
        out = in_namespace(prefix, folder,
                           f"mount -t tmpfs -o size={kib}k tmpfs out",
                           [(tick_at, ["tick"])],
                           f"cp out/{CHANNEL}.jsonl {keep}/ 2>/dev/null; true")
        problems = stderr_problems(out[0], (0,))
        first, bad = jsonl_ids(keep / f"{CHANNEL}.jsonl")
        if bad:
            problems.append(f"{bad} half-written JSONL line(s) on the full outbox folder")
        problems += consistency(folder, contacts, first)
        more, _ = recover(folder, contacts, first)
        t.case(f"tick, outbox folder on a full tmpfs ({kib} KiB)", problems + more)


def _readonly_by_mode(base: Path, work: Path, contacts: int, t: Tally) -> None:
    """Without root or user namespaces, file modes make the state read-only."""
    folder = fresh(base, work / "state-readonly-mode")
    before = dump(folder / "s.db")
    (folder / "s.db").chmod(0o400)
    folder.chmod(0o500)
    try:
        for args in (["tick"], ["apply", "defs.yaml"], ["config", "set", "four_eyes", "true"]):
            proc = campctl(folder, T0 + timedelta(minutes=1), *args)
            problems = stderr_problems(proc, (4,))
            t.case(f"{args[0]}, state read-only (mode 0400)", problems)
    finally:
        folder.chmod(0o700)
        (folder / "s.db").chmod(0o600)
    problems = [] if dump(folder / "s.db") == before else ["read-only state file changed"]
    more, _ = recover(folder, contacts)
    t.case("recovery after read-only state", problems + more)


def measure(workdir: Path, *, size: str = "small", seed: int = 0) -> dict:
    started = time.perf_counter()
    cfg = SIZES[size]
    workdir = Path(workdir)
    contacts = cfg["contacts"]
    base = prepare(workdir, contacts)
    t = Tally()
    _state_full_rlimit(base, workdir, contacts, cfg["state_limits"], t)
    _writes_refused(base, workdir, t, cfg["import_contacts"],
                    [1024, 40_000, 80_000, 160_000, 400_000])
    _outbox_full_rlimit(base, workdir, contacts, t)
    _namespace_cases(base, workdir, contacts, cfg["tmpfs_free_kib"], t)
    return {
        "contacts": contacts,
        "faults": t.faults,
        "faults_survived": t.survived,
        "exit_4": t.exit4,
        "outbox_items_retried": t.retried_outbox,
        "skipped": "; ".join(t.skipped) or "none",
        "failures": len(t.failures),
        "first_failures": " | ".join(t.failures[:3]) or "none",
        "cases": ", ".join(f"{k} ×{v}" for k, v in t.by_case.items()),
        "seconds": round(time.perf_counter() - started, 1),
        "ok": not t.failures and t.survived == t.faults and t.faults > 0,
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="campctl-disk-") as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small"),
                         indent=2))
