"""Sending windows in each recipient's time zone under concurrent ticks and SIGKILLs, across a
DST change, counted at real receivers, as figures.

`measure(workdir, size=..., seed=..., store=None)` runs on a SQLite file in `workdir`, or, with
`store` the URL of a PostgreSQL database, on a schema of its own there. Two one-off campaigns
with `window: "09:00-10:00"` and `window_timezone: contact` (campaign zone America/Los_Angeles),
`local-mail` on SMTP (aiosmtpd) and `local-hook` on a webhook, both on 127.0.0.1 with
`connections: 2`, are built on Saturday 2027-03-13 22:00 UTC for contacts in Asia/Tokyo (full
size), Asia/Kolkata (+05:30), Europe/Paris, America/New_York, America/Los_Angeles, with no
`timezone` attribute and with a zone that does not exist (both fall back to the campaign's
zone). Every contact's window is then on Sunday 03-14, the day the United States move their
clocks forward (New York 07:00 UTC, Los Angeles 10:00 UTC).

Rounds of 2 (full size: 4) tick processes released together (a process barrier) visit each zone's
opening at 09:10 and 09:40 local; at 10:10 EDT and 10:10 PDT too (inside the window a zone would
have without the DST change: sending there is a wrong offset), at full size also just before
openings. Killing rounds kill one process after a delay drawn in [0, the length of the last
rounds without kills] and the one handing over the k-th message. Then rounds without kills
visit the next day's openings of the zones that still have queued messages (a message in doubt
after a kill at 09:40 waits for the next window).

Counted at the receivers, with each arrival at the simulated instant of the round that sent it:
outside_window (an arrival, a redelivery too, outside its recipient's 09:00-10:00 in the zone
the contact's `timezone` names, the campaign's zone when missing or bad), missed_open_window
(a message still waiting after a round without kills in which its window was open: the
implementation's window is not the recipient's), lost (an item not sent or a sent one that never
arrived), second_key_for_recipient, resent_unexplained (a key again more often than kills left it
in doubt), window_fallback (the runs' count, `get runs -o json`) against the contacts without a
valid zone.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from zoneinfo import ZoneInfo

from workload_support import (
    Killer,
    TickRounds,
    after_round,
    arrivals_of,
    drop_state,
    first_arrivals,
    integrity_ok,
    iso,
    killing_receivers,
    query,
    resend_figures,
    round_figures,
    run_in_process,
    second_keys,
    state_in,
)

SIZES = {
    "small": {"per_zone": 2, "probes": False, "kill_every": 2, "processes": 2,
              "zones": ("Asia/Kolkata", "Europe/Paris", "America/New_York",
                        "America/Los_Angeles", "", "Mars/Olympus_Mons")},
    "full": {"per_zone": 10, "probes": True, "kill_every": 1, "processes": 4,
             "zones": ("Asia/Tokyo", "Asia/Kolkata", "Europe/Paris", "America/New_York",
                       "America/Los_Angeles", "", "Mars/Olympus_Mons")},
}
CONNECTIONS = 2
RECEIVER_DELAY = 0.002
KILL_AT_MAX = 3
FINISH_ROUNDS_MAX = 8
CAMPAIGN_ZONE = "America/Los_Angeles"
OPENS, CLOSES = wall_time(9, 0), wall_time(10, 0)
T0 = datetime(2027, 3, 13, 22, 0, tzinfo=UTC)
DST_ZONES = ("America/New_York", "America/Los_Angeles")
DEBUG = bool(os.environ.get("LOCAL_WINDOWS_WORKLOAD_DEBUG"))

DEFINITIONS = """\
kind: Channel
name: mail
type: smtp
host: 127.0.0.1
port: {smtp_port}
starttls: false
from: "Local <local@example.org>"
connections: {connections}
---
kind: Channel
name: hook
type: webhook
url: {hook_url}
timeout: 10
connections: {connections}
"""
CAMPAIGN = """\
---
kind: Campaign
name: {name}
timezone: {zone}
channel: {channel}
audience: {{all: true}}
message: {{subject: "{name} for {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
type: one-off
schedule: {{queue: immediately, send: after_queue, window: "09:00-10:00",
           window_timezone: contact}}
"""
CAMPAIGNS = {"local-mail": "mail", "local-hook": "hook"}


def _zone(attribute: str) -> ZoneInfo:
    """The zone a contact's window is read in (the campaign's when missing or not a zone)."""
    try:
        return ZoneInfo(attribute) if attribute else ZoneInfo(CAMPAIGN_ZONE)
    except (KeyError, ValueError):
        return ZoneInfo(CAMPAIGN_ZONE)


def _open(attribute: str, at: datetime) -> bool:
    return OPENS <= at.astimezone(_zone(attribute)).time() < CLOSES


def _opening(attribute: str, day: str) -> datetime:
    """09:00 local on `day` (YYYY-MM-DD) in the contact's zone, as UTC."""
    local = datetime.fromisoformat(f"{day}T09:00").replace(tzinfo=_zone(attribute))
    return local.astimezone(UTC)


def schedule(zones: tuple[str, ...], probes: bool) -> list[datetime]:
    """The rounds' instants: each zone's opening + 10 and + 40 minutes on 03-14, + 70 minutes
    in the DST zones (their window without the change), and with `probes` 10 minutes before."""
    moments: set[datetime] = set()
    for attribute in {z for z in zones if _zone(z).key != CAMPAIGN_ZONE} | {CAMPAIGN_ZONE}:
        opens = _opening(attribute, "2027-03-14")
        moments |= {opens + timedelta(minutes=10), opens + timedelta(minutes=40)}
        if attribute in DST_ZONES:
            moments.add(opens + timedelta(minutes=70))
        if probes:
            moments.add(opens - timedelta(minutes=10))
    return sorted(m for m in moments if m > T0)


def _setup(workdir: Path, state: Path | str, smtp, hook, per_zone: int,
           attributes: tuple[str, ...]) -> dict[str, str]:
    """Set up the state; the `timezone` attribute of each contact id ("" = none)."""
    zones = {f"c{i:04d}": attributes[i % len(attributes)]
             for i in range(per_zone * len(attributes))}
    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name,timezone\n" + "".join(
        f"{c},{c}@example.org,N{c},{z}\n" for c, z in zones.items()))
    definitions = workdir / "local.yaml"
    definitions.write_text(
        DEFINITIONS.format(smtp_port=smtp.port, hook_url=hook.url, connections=CONNECTIONS)
        + "".join(CAMPAIGN.format(name=n, channel=c, zone=CAMPAIGN_ZONE)
                  for n, c in CAMPAIGNS.items()))
    for args in (("init",), ("contacts", "import", str(csv)), ("apply", str(definitions))):
        run_in_process(state, T0, *args, user="local")
    for name in CAMPAIGNS:
        for args in (("submit", "campaign", name),
                     ("approve", "campaign", name, "--as", "approver"),
                     ("start", "campaign", name)):
            run_in_process(state, T0, *args, user="local")
    return zones


def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    params = SIZES[size]
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_in(store or workdir, "local")
    started = time.perf_counter()
    killer = Killer(rng)
    rounds = TickRounds(state, killer, rng, processes=params["processes"], user="local",
                        debug=DEBUG)
    doubt: list[tuple[int, list[str]]] = []
    seen_in_doubt: set[tuple[str, str]] = set()
    nonzero_unkilled: list[str] = []
    integrity_failures = 0
    smtp, hook = killing_receivers(killer, delay=RECEIVER_DELAY)
    with smtp, hook:
        zones = _setup(workdir, state, smtp, hook, params["per_zone"], params["zones"])
        # The build (nothing is inside a window at T0).
        after_round(rounds.round(T0), state, doubt, seen_in_doubt, nonzero_unkilled)
        for n, now in enumerate(schedule(params["zones"], params["probes"])):
            mode = "time" if n % params["kill_every"] == 0 else "none"
            after_round(rounds.round(now, mode, kill_at_max=KILL_AT_MAX), state, doubt,
                        seen_in_doubt, nonzero_unkilled)
            integrity_failures += not integrity_ok(state)
        # The next day's openings of the zones that still have queued messages.
        finishing = 0
        for _ in range(FINISH_ROUNDS_MAX):
            waiting = {zones[c] for (c,) in query(
                state, "SELECT c.external_id FROM queue_items q JOIN contacts c"
                       " ON c.id = q.contact_id WHERE q.status = 'queued'")}
            if not waiting:
                break
            now = min(_opening(z, "2027-03-15") for z in waiting) + timedelta(minutes=10)
            if rounds.spans and now <= rounds.spans[-1][2]:
                now = rounds.spans[-1][2] + timedelta(minutes=6)
            after_round(rounds.round(now), state, doubt, seen_in_doubt, nonzero_unkilled)
            finishing += 1
        time.sleep(0.2)  # let the receivers' last handlers record
        arrivals = arrivals_of(smtp, hook)
    runs_json = json.loads(run_in_process(state, now, "get", "runs", "-o", "json",
                                          user="local"))
    figures = {
        **round_figures(rounds, store), "finishing_rounds": finishing,
        "round_seconds_recent": round(max(rounds.recent, default=0.0), 2),
        **_figures(state, arrivals, rounds, doubt, zones),
        "window_fallback": sum(int(r.get("window_fallback") or 0) for r in runs_json),
        "expected_window_fallback": len(CAMPAIGNS) * sum(
            1 for z in zones.values() if _zone(z).key == CAMPAIGN_ZONE and z != CAMPAIGN_ZONE),
        "integrity_failures": integrity_failures,
        "nonzero_exits_unkilled": len(nonzero_unkilled),
        "seconds": round(time.perf_counter() - started, 1),
    }
    figures["ok"] = (
        integrity_failures == 0 and not nonzero_unkilled and figures["kills"] > 0
        and figures["outside_window"] == 0 and figures["missed_open_window"] == 0
        and figures["lost"] == 0 and figures["unknown_arrivals"] == 0
        and figures["second_key_for_recipient"] == 0 and figures["resent_unexplained"] == 0
        and figures["resent_max_per_kill"] <= CONNECTIONS * 2
        and figures["window_fallback"] == figures["expected_window_fallback"]
    )
    problems = nonzero_unkilled[:3] + figures.pop("_problems")
    if problems:
        figures["problems"] = "; ".join(problems)
    if store:
        drop_state(state)
    return figures


def _figures(state: Path | str, arrivals: list[tuple[str, float]], rounds: TickRounds,
             doubt: list[tuple[int, list[str]]], zones: dict[str, str]) -> dict:
    rows = query(state, "SELECT q.message_id, q.run_id, c.external_id, q.status"
                        " FROM queue_items q JOIN contacts c ON c.id = q.contact_id")
    items = {m: (run, contact, status) for m, run, contact, status in rows}
    seen = Counter(m for m, _ in arrivals)
    first_at = first_arrivals(arrivals, rounds)
    problems: list[str] = []
    outside = 0
    for m, wall in arrivals:
        if m not in items:
            continue
        at = rounds.now_at(wall)
        contact = items[m][1]
        if at is None or not _open(zones[contact], at):
            outside += 1
            local = at.astimezone(_zone(zones[contact])) if at else None
            problems.append(f"{m} to {contact} ({zones[contact] or 'no zone'}) at "
                            f"{iso(at) if at else '?'} = {local:%H:%M %Z} local")
    # A round without kills that found a message's window open left nothing of it waiting.
    killed = {e["round"] for e in rounds.entries if e["killed"]}
    missed = 0
    for r, (_, _, now) in enumerate(rounds.spans):
        if r in killed:
            continue
        for m, (_, contact, _) in items.items():
            got = first_at.get(m)
            if _open(zones[contact], now) and (got is None or got > now):
                missed += 1
                problems.append(f"{m} to {contact} ({zones[contact] or 'no zone'}) waited "
                                f"through {iso(now)}")
    lost = [m for m, (_, _, status) in items.items() if status != "sent" or not seen[m]]
    return {
        "messages": len(seen), "arrivals": len(arrivals), "items": len(items),
        "items_by_status": dict(Counter(s for _, _, s in items.values())),
        "outside_window": outside, "missed_open_window": missed, "lost": len(lost),
        "unknown_arrivals": sum(1 for m in seen if m not in items),
        "second_key_for_recipient": second_keys(seen, {m: v[:2] for m, v in items.items()}),
        **resend_figures(seen, doubt),
        "by_zone": dict(Counter(zones[c] or "(none)" for m, (_, c, _) in items.items()
                                if m in first_at)),
        "_problems": problems[:5],
    }


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                                 seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0,
                                 store=sys.argv[3] if len(sys.argv) > 3 else None),
                         indent=2, default=str))
