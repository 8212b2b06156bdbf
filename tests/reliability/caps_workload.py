"""Frequency caps under concurrent ticks and SIGKILLs, counted at real receivers, as figures.

`measure(workdir, size=..., seed=..., store=None)` runs on a SQLite file in `workdir`, or, with
`store` the URL of a PostgreSQL database, on a schema of its own there. Two channels on
127.0.0.1 count what arrives: SMTP (aiosmtpd) and a webhook, each with `connections: 2`.

Two caps: `marketing` (max 2 per 6h of `promotional`, policy defer) and `news` (max 1 per 6h of
`newsletter`, policy drop). Three date-triggered campaigns compete for them: `promo-mail`
(promotional, SMTP, every 3h, priority 20), `promo-hook` (promotional, webhook, every 6h at
:30 past 1, 7, 13, 19, priority 80) and `news` (newsletter, webhook, every 4h); a manual
scenario `offer` (one promotional send step on SMTP, priority 100) is launched half-way. More
promotional messages are built than the cap lets through, so deferred messages pile up and
compete for each freed slot.

Each round moves the simulated clock by STEP (longer than the claim lease, so a message a kill
left in doubt goes again next round) and releases 2 (full size: 4) tick processes together (a
process barrier). Every other round kills: one process after a delay drawn in [0, the length of
the last rounds without kills] and the one handing over the k-th message. Then the campaigns
stop and rounds without kills take what kills left behind and (full size) jump to each next
instant a cap frees, until nothing is due (what is still deferred then is counted as deferred,
with its `next_attempt_at`).

Counted at the receivers, per contact, each message id once at the simulated instant of the
round that first delivered it (a redelivery of the same id after a kill left it in doubt counts
once): over_cap (a rolling `per` holding more than `max` messages of a cap's types), lost (an
item neither sent and arrived, nor cancelled `capped` under drop, nor still deferred),
arrived_not_sent (includes a dropped message that arrived), second_key_for_recipient (two ids
for one recipient of one run or scenario step), resent_unexplained (a key again more often than
kills left it in doubt), priority_inversions (judged in rounds without kills; the claims of
the round before have expired: a message went while a message of higher priority of the same
cap, built in an earlier round, waited for the same contact) beside priority_contests (such
rounds where a higher priority went first while a lower one waited: the check had something to
judge).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    "small": {"contacts": 6, "rounds": 9, "drain": False, "processes": 2},
    "full": {"contacts": 20, "rounds": 30, "drain": True, "processes": 4},
}
CONNECTIONS = 2
RECEIVER_DELAY = 0.002
KILL_AT_MAX = 2
FINISH_ROUNDS_MAX = 12
T0 = datetime(2027, 4, 5, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=50)  # longer than the claim lease (5 min)
DEBUG = bool(os.environ.get("CAPS_WORKLOAD_DEBUG"))

CAPS = {  # name: (max, per, message types, policy)
    "marketing": (2, timedelta(hours=6), ("promotional",), "defer"),
    "news": (1, timedelta(hours=6), ("newsletter",), "drop"),
}
PRIORITY = {"promo-mail": 20, "promo-hook": 80, "news": 50, "offer": 100}

DEFINITIONS = """\
kind: Channel
name: mail
type: smtp
host: 127.0.0.1
port: {smtp_port}
starttls: false
from: "Caps <caps@example.org>"
connections: {connections}
---
kind: Channel
name: hook
type: webhook
url: {hook_url}
timeout: 10
connections: {connections}
---
kind: FrequencyCap
name: marketing
max: 2
per: 6h
message_types: [promotional]
policy: defer
---
kind: FrequencyCap
name: news
max: 1
per: 6h
message_types: [newsletter]
policy: drop
---
kind: Scenario
name: offer
reentry: parallel
launch: {{type: manual}}
steps:
  - id: offer
    send: {{channel: mail, message_type: promotional, priority: 100,
           subject: "offer for {{{{ first_name }}}}", body: "Hello"}}
"""
CAMPAIGN = """\
---
kind: Campaign
name: {name}
timezone: UTC
closes_at: 2028-12-31T23:59
channel: {channel}
message_type: {message_type}
priority: {priority}
audience: {{all: true}}
message: {{subject: "{name} for {{{{ first_name }}}}", body: "Hello {{{{ first_name }}}}"}}
type: date-triggered
schedule: {{start: immediately, cron: "{cron}", catchup: all}}
"""
CAMPAIGNS = {  # name: (channel, message type, cron)
    "promo-mail": ("mail", "promotional", "0 */3 * * *"),
    "promo-hook": ("hook", "promotional", "30 1-23/6 * * *"),
    "news": ("hook", "newsletter", "0 */4 * * *"),
}


def _setup(workdir: Path, state: Path | str, smtp, hook, contacts: int) -> None:
    def must(*args: str) -> None:
        run_in_process(state, T0, *args, user="caps")

    csv = workdir / "contacts.csv"
    csv.write_text("id,email,first_name\n" + "".join(
        f"c{i:04d},c{i:04d}@example.org,N{i}\n" for i in range(contacts)))
    definitions = workdir / "caps.yaml"
    definitions.write_text(
        DEFINITIONS.format(smtp_port=smtp.port, hook_url=hook.url, connections=CONNECTIONS)
        + "".join(CAMPAIGN.format(name=n, channel=c, message_type=t, cron=cron,
                                  priority=PRIORITY[n])
                  for n, (c, t, cron) in CAMPAIGNS.items()))
    must("init")
    must("contacts", "import", str(csv))
    must("apply", str(definitions))
    for name in CAMPAIGNS:
        must("submit", "campaign", name)
        must("approve", "campaign", name, "--as", "approver")
        must("start", "campaign", name)
    must("activate", "scenario", "offer")


def _due_left(state: Path | str, now: datetime) -> int:
    """Queued items due at `now` (not deferred past it)."""
    return query(state, "SELECT count(*) FROM queue_items WHERE status = 'queued'"
                        " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", (iso(now),))[0][0]


def _next_free(state: Path | str) -> datetime | None:
    """The earliest `next_attempt_at` of a queued item (when a cap frees next)."""
    (at,), = query(state, "SELECT min(next_attempt_at) FROM queue_items WHERE status = 'queued'")
    return datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None


def measure(workdir: Path, *, size: str = "small", seed: int = 0,
            store: str | None = None) -> dict:
    params = SIZES[size]
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    state = state_in(store or workdir, "caps")
    started = time.perf_counter()
    killer = Killer(rng)
    rounds = TickRounds(state, killer, rng, processes=params["processes"], user="caps",
                        debug=DEBUG)
    doubt: list[tuple[int, list[str]]] = []
    seen_in_doubt: set[tuple[str, str]] = set()
    nonzero_unkilled: list[str] = []
    integrity_failures = 0
    now = T0
    smtp, hook = killing_receivers(killer, delay=RECEIVER_DELAY)
    with smtp, hook:
        _setup(workdir, state, smtp, hook, params["contacts"])
        after_round(rounds.round(now), state, doubt, seen_in_doubt, nonzero_unkilled)
        for n in range(1, params["rounds"]):
            now += STEP
            if n == params["rounds"] // 2:
                run_in_process(state, now, "start", "scenario", "offer", "--all", "--yes",
                               user="caps")
            mode = "time" if n % 2 else "none"
            after_round(rounds.round(now, mode, kill_at_max=KILL_AT_MAX), state, doubt,
                        seen_in_doubt, nonzero_unkilled)
            integrity_failures += not integrity_ok(state)
        stop = now
        for name in CAMPAIGNS:
            run_in_process(state, now, "stop", "campaign", name, "--note", "caps: finishing",
                           user="caps")
        finishing = 0
        for _ in range(FINISH_ROUNDS_MAX):
            # Past the lease (what a kill left in doubt), then to the next freed slot.
            now += timedelta(minutes=6)
            if not _due_left(state, now):
                nxt = _next_free(state)
                if nxt is None or not params["drain"]:
                    break
                now = max(now, nxt)
            after_round(rounds.round(now), state, doubt, seen_in_doubt, nonzero_unkilled)
            finishing += 1
        time.sleep(0.2)  # let the receivers' last handlers record
        arrivals = arrivals_of(smtp, hook)
    runs_json = json.loads(run_in_process(state, now, "get", "runs", "-o", "json", user="caps"))
    figures = _figures(state, arrivals, rounds, doubt, now)
    figures = {
        **round_figures(rounds, store), "finishing_rounds": finishing,
        "simulated_hours": round((stop - T0).total_seconds() / 3600, 1),
        "round_seconds_recent": round(max(rounds.recent, default=0.0), 2),
        **figures,
        "capped_counted_by_runs": sum(int(r.get("capped") or 0) for r in runs_json),
        "integrity_failures": integrity_failures,
        "nonzero_exits_unkilled": len(nonzero_unkilled),
        "seconds": round(time.perf_counter() - started, 1),
    }
    figures["ok"] = (
        integrity_failures == 0 and not nonzero_unkilled and figures["kills"] > 0
        and figures["over_cap"] == 0 and figures["lost"] == 0
        and figures["arrived_not_sent"] == 0 and figures["unknown_arrivals"] == 0
        and figures["second_key_for_recipient"] == 0 and figures["resent_unexplained"] == 0
        and figures["resent_max_per_kill"] <= CONNECTIONS * 2
        and figures["priority_inversions"] == 0 and figures["priority_contests"] > 0
        and figures["dropped"] > 0 and figures["deferred_then_sent"] > 0
    )
    problems = nonzero_unkilled[:3] + figures.pop("_problems")
    if problems:
        figures["problems"] = "; ".join(problems)
    if store:
        drop_state(state)
    return figures


def _cap_of(message_type: str | None) -> str | None:
    for name, (_, _, types, _) in CAPS.items():
        if message_type in types:
            return name
    return None


def _figures(state: Path | str, arrivals: list[tuple[str, float]], rounds: TickRounds,
             doubt: list[tuple[int, list[str]]], end: datetime) -> dict:
    rows = query(state, "SELECT q.message_id, coalesce(r.campaign, q.scenario), q.run_id,"
                        " q.scenario, q.step, q.contact_id, q.message_type, q.status,"
                        " q.last_error, q.next_attempt_at, q.created_at, q.attempts"
                        " FROM queue_items q LEFT JOIN runs r ON r.id = q.run_id")
    items = {row[0]: row for row in rows}
    seen = Counter(m for m, _ in arrivals)
    first_at = first_arrivals(arrivals, rounds)
    problems: list[str] = []

    # Never more than `max` of a cap's types per contact in any rolling `per`.
    per_contact: dict[tuple, list[datetime]] = defaultdict(list)
    for m, at in first_at.items():
        row = items.get(m)
        cap = row and _cap_of(row[6])
        if cap:
            per_contact[(row[5], cap)].append(at)
    over_cap = 0
    for (contact, cap), times in per_contact.items():
        most, per, _, _ = CAPS[cap]
        times.sort()
        for i in range(len(times) - most):
            if times[i + most] - times[i] < per:
                over_cap += 1
                problems.append(f"contact {contact}: {most + 1} {cap} messages within "
                                f"{iso(times[i])}..{iso(times[i + most])}")

    # Nothing lost: sent and arrived, dropped by a drop cap, or still deferred.
    lost = dropped = deferred = 0
    arrived_not_sent = []
    for m, (_, _, _, _, _, _, mtype, status, error, nxt, _, _) in items.items():
        policy = CAPS[_cap_of(mtype)][3] if _cap_of(mtype) else None
        if status == "sent":
            lost += not seen[m]
        elif status == "cancelled" and error == "capped" and policy == "drop":
            dropped += 1
            if seen[m]:
                arrived_not_sent.append(m)
        elif status == "queued" and policy == "defer" and nxt and nxt > iso(end):
            deferred += 1
            if seen[m]:
                arrived_not_sent.append(m)
        else:
            lost += 1
            problems.append(f"{m}: {status} {error} next {nxt}")
            if seen[m]:
                arrived_not_sent.append(m)
    unknown = [m for m in seen if m not in items]

    # One message id per recipient of a run (or scenario step).
    second_key = second_keys(seen, {m: row[2:6] for m, row in items.items()})

    # Priority: judged in rounds without a kill in them or in the round before.
    killed_rounds = {e["round"] for e in rounds.entries if e["killed"]}
    round_of_now = {now: i for i, (_, _, now) in enumerate(rounds.spans)}
    inversions = contests = 0
    by_contact: dict[tuple, list[str]] = defaultdict(list)
    for m, row in items.items():
        cap = _cap_of(row[6])
        if cap:
            by_contact[(row[5], cap)].append(m)
    for (contact, _cap), ids in by_contact.items():
        for m in ids:
            at = first_at.get(m)
            if at is None:
                continue
            r = round_of_now[at]
            if r in killed_rounds:
                continue
            mine = PRIORITY[items[m][1]]
            for other in ids:
                if other == m or items[other][10] >= iso(at):
                    continue  # built in this round or later: not waiting before it
                later = first_at.get(other)
                if later is not None and later <= at:
                    continue  # already delivered
                theirs = PRIORITY[items[other][1]]
                if theirs > mine:
                    inversions += 1
                    problems.append(f"contact {contact} at {iso(at)}: {items[m][1]} ({mine})"
                                    f" went while {items[other][1]} ({theirs}) waited")
                elif theirs < mine:
                    contests += 1
    deferred_then_sent = sum(1 for m, row in items.items()
                             if row[7] == "sent" and row[1] in PRIORITY
                             and _cap_of(row[6]) == "marketing" and m in first_at
                             and first_at[m] - _created(row[10]) >= STEP)
    return {
        "messages": len(seen), "arrivals": len(arrivals),
        "items": len(items),
        "items_by_status": dict(Counter(row[7] for row in items.values())),
        "over_cap": over_cap, "lost": lost, "dropped": dropped, "deferred_at_end": deferred,
        "deferred_then_sent": deferred_then_sent,
        "arrived_not_sent": len(arrived_not_sent), "unknown_arrivals": len(unknown),
        "second_key_for_recipient": second_key,
        **resend_figures(seen, doubt),
        "priority_inversions": inversions, "priority_contests": contests,
        "_problems": problems[:5],
    }


def _created(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(Path(tmp), size=sys.argv[1] if len(sys.argv) > 1 else "small",
                                 seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0,
                                 store=sys.argv[3] if len(sys.argv) > 3 else None),
                         indent=2, default=str))
