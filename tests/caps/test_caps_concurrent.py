"""Frequency caps under concurrent ticks, on both stores: several `campctl tick` processes (one
per host) deliver two campaigns on two webhook channels that compete for each contact's slots,
counted at a real receiver: never more than `max` per contact per period, and the higher
priority gets the slot. On PostgreSQL the claims of the two channels run side by side and
meet at the caps lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from caps_support import T0, campaign, cap
from receivers import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
CONTACTS = 12
HOSTS = 2
SEND = "{at: 2027-03-01T09:01}"


def tick(state, now: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPCTL_")}
    env["CAMPCTL_USER"] = "tester"
    env["CAMPCTL_BUSY_TIMEOUT"] = "120000"  # correctness, not lock waits, is tested here
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "campctl", "--state", str(state), "--now", now, "tick"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(procs: list[subprocess.Popen]) -> None:
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err)


def test_concurrent_ticks_never_give_more_than_max_per_contact(caps, state):
    with WebhookReceiver(delay=0.01) as hook:
        channel = textwrap.dedent("""\
            kind: Channel
            name: {name}
            type: webhook
            url: {url}/{name}
            connections: 1
            """)
        caps.setup(CONTACTS, channel.format(name="hook-a", url=hook.url),
                   channel.format(name="hook-b", url=hook.url), cap(max=1),
                   campaign("low", priority=10, channel="hook-a", send=SEND),
                   campaign("high", priority=90, channel="hook-b", send=SEND),
                   campaign("more", priority=50, channel="hook-a", send=SEND))
        caps.start("low", "high", "more", now=T0)
        caps.tick(T0)  # builds the three runs, sends nothing yet
        finish([tick(state, "2027-03-01T09:01:00Z") for _ in range(HOSTS)])
        first_day = hook.keys()
        caps.tick("2027-03-01T12:00:00Z")
        assert hook.keys() == first_day  # the same day: nothing more
        finish([tick(state, "2027-03-02T09:02:00Z") for _ in range(HOSTS)])
        every = hook.keys()
    assert hook.duplicates() == 0
    runs = {name: r["id"] for name, r in caps.runs().items()}
    by_run = {v: k for k, v in runs.items()}

    def contact_counts(keys: list[str]) -> Counter:
        return Counter(re.match(r"r\d+-c(\d+)$", k).group(1) for k in keys)  # type: ignore[union-attr]

    # Day one: each contact got exactly one message, from the highest priority.
    assert sorted(contact_counts(first_day).values()) == [1] * CONTACTS
    assert {by_run[int(k.split("-")[0][1:])] for k in first_day} == {"high"}
    # Day two: the slot freed once; the next priority (more) took it, low still waits.
    second_day = every[len(first_day):]
    assert sorted(contact_counts(second_day).values()) == [1] * CONTACTS
    assert {by_run[int(k.split("-")[0][1:])] for k in second_day} == {"more"}
    left = caps.rows("SELECT r.campaign, q.status, count(*) AS n FROM queue_items q"
                     " JOIN runs r ON r.id = q.run_id WHERE r.campaign = 'low'"
                     " GROUP BY r.campaign, q.status")
    assert left == [{"campaign": "low", "status": "queued", "n": CONTACTS}]
