"""Secrets written `${VAR}` never show, end to end: not in a dump, the log, `describe`, `-o json`
or the outbox. The other security checks and the tests that cover them are listed in
docs/reliability.md (the security checklist)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from receivers import WebhookReceiver

SECRET = "tok-s3cret-8c1f"
NOW = "2027-03-01T09:00:00Z"


def test_webhook_secret_never_leaves_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env.update(HOOK_TOKEN=SECRET, CAMPCTL_USER="auditor")
    state = tmp_path / "s.db"

    def campctl(*args: str, now: str = NOW) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "campctl", "--state", str(state), "--now",
                               now, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc

    with WebhookReceiver() as hook:
        (tmp_path / "c.csv").write_text("id,email\na1,a1@example.org\na2,a2@example.org\n")
        (tmp_path / "d.yaml").write_text(
            f"kind: Channel\nname: hook\ntype: webhook\nurl: {hook.url}\n"
            'headers: {Authorization: "Bearer ${HOOK_TOKEN}"}\n---\n'
            "kind: Channel\nname: archive\ntype: outbox\ndir: out\n---\n"
            + "".join(f"---\nkind: Campaign\nname: {n}\ntimezone: UTC\ntype: one-off\n"
                      f"channel: {c}\naudience: {{all: true}}\n"
                      'message: {subject: "s", body: "b"}\n'
                      "schedule: {queue: immediately, send: after_queue}\n"
                      for n, c in (("to-hook", "hook"), ("to-archive", "archive"))))
        outputs = [campctl("contacts", "import", "c.csv"), campctl("apply", "d.yaml")]
        for name in ("to-hook", "to-archive"):
            outputs += [campctl("submit", "campaign", name),
                        campctl("approve", "campaign", name, "--as", "other"),
                        campctl("start", "campaign", name)]
        outputs += [campctl("tick", now="2027-03-01T09:01:00Z"),
                    campctl("describe", "channel", "hook"),
                    campctl("describe", "channel", "hook", "-o", "json"),
                    campctl("get", "channels", "-o", "json"), campctl("log"),
                    campctl("log", "-o", "json"), campctl("outbox", "list", "-o", "json"),
                    campctl("history", "channel", "hook", "-o", "json")]
        arrived = hook.arrivals()
    assert len(arrived) == 2  # the secret was used ...
    for proc in outputs:  # ... and never printed
        assert SECRET not in proc.stdout and SECRET not in proc.stderr
    assert "${HOOK_TOKEN}" in outputs[-6].stdout  # describe shows the reference
    conn = sqlite3.connect(state)
    dump = "\n".join(conn.iterdump())
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert SECRET not in dump
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
