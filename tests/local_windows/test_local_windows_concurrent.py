"""Several `campctl tick` processes at once on one state, across the zone openings of a run
whose window is read in each contact's zone, counted at a real webhook receiver: every message
arrives exactly once, and none outside its recipient's window (both stores)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from reliability.receivers import WebhookReceiver

from local_windows.support import ok

ROOT = Path(__file__).resolve().parents[2]
ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo"]
PER_ZONE = 5
T0 = "2027-02-28T22:00:00Z"
# Tokyo opens at 00:00Z and closes at 08:00Z, Berlin 08:00Z-16:00Z, New York 14:00Z-22:00Z;
# the contacts without a zone (UTC, the campaign's) 09:00Z-17:00Z.
# Two rounds of three processes (a PostgreSQL tick costs ~2 s here): at 08:00Z the run is built
# and Berlin opens as Tokyo closes; at 14:00Z New York opens, UTC's window is open, Tokyo's
# still closed.
ROUNDS = {"2027-03-01T08:00:00Z": {"Europe/Berlin"},
          "2027-03-01T14:00:00Z": {"America/New_York", "UTC"}}


def _tick(state, now: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env["CAMPCTL_USER"] = "tester"
    env["CAMPCTL_BUSY_TIMEOUT"] = "120000"  # correctness, not lock waits
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", now, "tick"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_ticks_send_each_message_once_inside_its_window(cli, rows, state,
                                                                   write_yaml, tmp_path):
    contacts = tmp_path / "contacts.csv"
    lines = [f"{z.split('/')[1].lower()}{i},x{z[:2]}{i}@example.com,{z}"
             for z in ZONES for i in range(PER_ZONE)]
    lines += [f"nozone{i},n{i}@example.com," for i in range(3)]
    contacts.write_text("id,email,timezone\n" + "\n".join(lines) + "\n")
    with WebhookReceiver(delay=0.002) as hook:
        write_yaml("defs.yaml", f"""\
kind: Channel
name: hook
type: webhook
url: {hook.url}
timeout: 10
---
kind: Campaign
name: local
timezone: UTC
channel: hook
type: one-off
message: {{subject: "Hello", body: "Local morning"}}
audience: {{all: true}}
schedule:
  send: immediately
  window: "09:00-17:00"
  window_timezone: contact
""")
        for step in (("init",), ("contacts", "import", str(contacts)),
                     ("apply", str(write_yaml.folder)), ("submit", "campaign", "local"),
                     ("approve", "campaign", "local", "--as", "boss"),
                     ("start", "campaign", "local")):
            ok(cli, T0, *step)
        # The first round also builds the run (once, whichever process gets to it).
        for now, opening in ROUNDS.items():
            procs = [_tick(state, now) for _ in range(3)]
            for proc in procs:
                out, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, (out, err)
            sent = rows("SELECT window_zone, count(*) AS n FROM queue_items"
                        " WHERE status = 'sent' AND sent_at = ? GROUP BY window_zone", (now,))
            assert {r["window_zone"] for r in sent} == opening, (now, sent)
        keys = hook.keys()
    items = rows("SELECT q.message_id, q.window_zone, q.sent_at, q.status FROM queue_items q")
    done = [r for r in items if r["status"] == "sent"]
    assert len(keys) == len(done) == 2 * PER_ZONE + 3
    assert not [k for k, n in Counter(keys).items() if n > 1]
    assert set(keys) == {r["message_id"] for r in done}
    assert {r["window_zone"] for r in items if r["status"] == "queued"} == {"Asia/Tokyo"}
    for item in done:  # each recorded instant lies inside its recipient's 09:00-17:00
        local = datetime.fromisoformat(item["sent_at"].replace("Z", "+00:00")).astimezone(
            ZoneInfo(item["window_zone"]))
        assert 9 <= local.hour < 17, item
