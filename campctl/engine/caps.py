"""Frequency caps: at most `max` messages per contact per rolling period `per`, across every
campaign, run, scenario and channel, decided when a message is handed over.

The decision is taken inside each claim transaction (engine/delivery.py `_claim`), under the
caps lock (one capped claim at a time, on any host; on SQLite the write lock), so two ticks
never give a contact's last slot twice. For the items a claim picks whose message type a cap
covers, the claim counts per contact the messages of the cap's types sent within `per` before
now plus those in flight (claimed by another delivery, or a hand-over begun on them); an item
goes only if every cap covering it leaves it a slot. Several due items of one contact (any
channel, run or scenario) compete for its remaining slots by priority (highest first), then the
earliest queued, then the lowest id: those outside the slots are capped. A message in doubt
(a delivery was killed between its hand-over and the record of it) may already have reached the
contact: no cap holds it, it goes again with its key, and it ranks before the others so that it
keeps the slot it used. A capped item is
deferred (`policy: defer`: stays queued until the cap frees, i.e. the oldest counted send +
`per`, or a short recheck when only messages in flight fill the cap) or dropped (`policy: drop`:
cancelled with the reason `capped`, never handed over). Either way it keeps the name of the
first cap that held it (`queue_items.capped`), which the run counts as `capped`.

Without any FrequencyCap the claim is exactly what it was: `CapRules.load` reads the caps once
per delivery pass, and an empty set sends the claim down its usual single statement.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campctl.store import caps as store
from campctl.store import delivery as delivery_store
from campctl.store import log as exec_log
from campctl.store.db import Database
from campctl.store.delivery import DueScope
from campctl.timeutil import parse_duration, to_db

# When only messages in flight fill a cap, a deferred item looks again this much later (those
# messages are then sent, and counted with their send time, or given back).
RECHECK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CapRule:
    """One FrequencyCap as the claim applies it."""

    name: str
    max: int
    per: timedelta
    per_text: str
    message_types: tuple[str, ...] | None
    policy: str

    def covers(self, message_type: str | None) -> bool:
        return self.message_types is None or message_type in self.message_types


def load_rules(db: Database) -> list[CapRule]:
    """Every applied FrequencyCap, by name (an unreadable one is left out)."""
    from campctl.definitions.models import FrequencyCap
    from campctl.store.objects import readable_records

    rules = []
    for obj in readable_records(db, "FrequencyCap"):
        if not isinstance(obj.spec, dict):
            continue
        cap = FrequencyCap.from_spec(obj.spec)
        try:
            per = parse_duration(cap.per)
        except ValueError:
            continue
        if per <= timedelta(0):
            continue
        rules.append(CapRule(obj.name, cap.max, per, cap.per, cap.message_types, cap.policy))
    return rules


@dataclass(frozen=True, slots=True)
class Held:
    """What a cap did to the items of one run or scenario step in one claim."""

    cap: str
    policy: str
    count: int
    until: datetime | None  # deferred: the earliest time one looks again


@dataclass
class CapRules:
    """The caps of one delivery pass (read once) and what they held in it."""

    db: Database
    scope: DueScope
    rules: list[CapRule] | None = None
    capped: int = 0  # items held in this pass (deferred or dropped)
    dropped: int = 0
    held_by: dict[str, int] = field(default_factory=dict)  # cap name -> items held

    def active(self) -> bool:
        if self.rules is None:
            self.rules = load_rules(self.db)
        return bool(self.rules)

    def claim(self, *, channel: str, limit: int, until: datetime, token: str,
              now: datetime) -> list[int]:
        """Inside the claim transaction: pick up to `limit` due items of `channel`, hold those
        a cap covers and has no slot for, claim the rest. Returns the claimed ids."""
        db = self.db
        db.lock_caps()
        picked = store.pick(db, self.scope, channel=channel, limit=limit)
        remaining = {p.id: p for p in picked}
        for rule in self.rules or ():
            covered = [p for p in remaining.values()
                       if p.contact_id is not None and rule.covers(p.message_type)]
            if not covered:
                continue
            held = self._apply(rule, covered, now=now)
            for item_id in held:
                remaining.pop(item_id, None)
        return delivery_store.take(db, sorted(remaining), until=until, token=token, now=now)

    def _apply(self, rule: CapRule, covered: list[store.Picked], *, now: datetime) -> set[int]:
        """Hold the covered items `rule` has no slot for; returns their ids."""
        db = self.db
        contacts = sorted({int(p.contact_id) for p in covered if p.contact_id is not None})
        used = store.usage(db, self.scope, contacts, rule.message_types, since=now - rule.per,
                           now=now)
        rank = store.ranks(db, self.scope, contacts, rule.message_types)
        deferred: list[tuple[int, datetime]] = []
        dropped: list[int] = []
        by_subject: dict[tuple, list[datetime | None]] = defaultdict(list)
        for item in covered:
            if item.in_doubt:
                continue  # it may have reached the contact already: it goes again, with its key
            contact = int(item.contact_id or 0)
            use = used.get(contact, store.Usage())
            slots = rule.max - use.used
            # An item the ranking did not see (it stopped being due meanwhile) takes no slot.
            if rank.get(item.id, rule.max + 1) <= slots:
                continue
            subject = (item.run_id, item.scenario, item.step)
            if rule.policy == "drop":
                dropped.append(item.id)
                by_subject[subject].append(None)
                continue
            if use.sent >= rule.max and use.oldest_sent is not None:
                later = max(use.oldest_sent + rule.per, now + timedelta(seconds=1))
            else:
                later = now + RECHECK
            deferred.append((item.id, later))
            by_subject[subject].append(later)
        if not deferred and not dropped:
            return set()
        store.defer(db, deferred, cap=rule.name)
        store.drop(db, dropped, cap=rule.name)
        count = len(deferred) + len(dropped)
        self.capped += count
        self.dropped += len(dropped)
        self.held_by[rule.name] = self.held_by.get(rule.name, 0) + count
        for subject, times in by_subject.items():
            self._log(rule, subject, times, now=now)
        return {i for i, _ in deferred} | set(dropped)

    def _log(self, rule: CapRule, subject: tuple, times: list[datetime | None], *,
             now: datetime) -> None:
        run_id, scenario, step = subject
        count = len(times)
        if rule.policy == "drop":
            what = "dropped (cancelled: capped)"
        else:
            soonest = min(t for t in times if t is not None)
            what = f"deferred (the first until {to_db(soonest)})"
        details = (f"{count} messages capped by frequency cap {rule.name} (max {rule.max} per "
                   f"{rule.per_text}): {what}")
        if run_id is not None:
            from campctl.engine.runs import run_subject
            from campctl.store import runs as store_runs

            who = run_subject(run_id, store_runs.get_run_record(self.db, run_id))
        else:
            who = exec_log.Subject(scenario=scenario)
            details = f"step {step}: {details}"
        exec_log.append(self.db, exec_log.LogEntry("Messages Capped", who, details=details),
                        now=now)
