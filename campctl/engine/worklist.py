"""Work lists: a stopped or failed run waits in someone's list until it is restarted or skipped.

A stop assigns the run to the actor who stopped it; a failure to the campaign's creator (no one
when the creator is unknown); restart and skip clear the entry; `assign` hands it over. Each move
writes a history row (kind `worklist`, name `run/ID`, from → to assignee) in the caller's
transaction, and the person it concerns also gets the notification at their own address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from campctl.errors import ActionRefused, NotFound
from campctl.store import history
from campctl.store import runs as store_runs
from campctl.store import users as store
from campctl.store.config import get_config
from campctl.store.db import Database

RUN = "run"
UNASSIGNED = "(nobody)"


def _label(user: str | None) -> str:
    return user if user else UNASSIGNED


@dataclass(frozen=True)
class Move:
    """One change of a run's work-list entry (`assign` or `clear`), as its history row shows it:
    who made it, the assignee before and after (None: no entry), and why."""

    action: str
    actor: str
    before: str | None
    after: str | None
    note: str | None


@dataclass(frozen=True)
class Assignment:
    """Who a run's entry goes to (None: nobody), the entry's reason, and the history note
    (default: the reason)."""

    assigned_to: str | None
    reason: str
    note: str | None = None


def _record(db: Database, run_id: int, move: Move, *, now: datetime) -> None:
    history.record(db, history.HistoryEntry(
        kind="worklist", name=f"{RUN}/{run_id}", action=move.action, actor=move.actor,
        from_status=None if move.before is None else _label(move.before),
        to_status=None if move.after is None else _label(move.after), note=move.note), now=now)


def on_run_notification(db: Database, *, run_id: int, kind: str, actor: str | None,
                        note: str | None, now: datetime) -> str | None:
    """Keep the work list in step with a run notification (caller's transaction); returns the
    user the notification concerns (who should also receive it), or None."""
    who = actor or "campctl"
    if kind == "run-stopped":
        _assign(db, run_id, Assignment(actor, f"stopped: {note}" if note else "stopped"),
                actor=who, now=now)
        return actor
    if kind == "run-failed":
        run = store_runs.get_run_record(db, run_id)
        owner = store.created_by(db, "Campaign", run.campaign) if run else None
        _assign(db, run_id, Assignment(owner, f"failed: {note}" if note else "failed"),
                actor=who, now=now)
        return owner
    if kind in ("run-restarted", "run-retried", "run-skipped"):
        before = store.clear(db, kind=RUN, object_id=str(run_id), now=now)
        if before is not None:
            _record(db, run_id, Move("clear", who, before, None, kind.removeprefix("run-")),
                    now=now)
        return actor
    return None


def _assign(db: Database, run_id: int, assignment: Assignment, *, actor: str,
            now: datetime) -> None:
    entry = store.open_entry(db, RUN, str(run_id))
    before = entry["assigned_to"] if entry else None
    store.assign(db, kind=RUN, object_id=str(run_id), assigned_to=assignment.assigned_to,
                 reason=assignment.reason, now=now)
    _record(db, run_id, Move("assign", actor, None if entry is None else _label(before),
                             _label(assignment.assigned_to), assignment.note or assignment.reason),
            now=now)


def notify_user(db: Database, *, notification_id: int, user: str | None) -> int | None:
    """A copy of the notification addressed to `user`'s email, when the user is known, has an
    address, and it is not `notify_to` already (that one gets the original)."""
    if not user:
        return None
    found = store.get_user(db, user)
    if found is None or not found["email"]:
        return None
    if found["email"] == get_config(db, "notify_to"):
        return None
    return store.add_notification_for(db, notification_id=notification_id,
                                      recipient=found["email"])


def assign_run(db: Database, *, run_id: int, user: str, actor: str, now: datetime,
               note: str | None = None) -> dict[str, Any]:
    """`campctl assign run ID USER`: hand an open work-list entry to another user."""
    if store_runs.get_run_record(db, run_id) is None:
        raise NotFound(f"no run {run_id} (list them with 'campctl get runs')")
    if store.get_user(db, user) is None:
        raise NotFound(f"no user {user!r} (list them with 'campctl users list')")
    entry = store.open_entry(db, RUN, str(run_id))
    if entry is None:
        raise ActionRefused(f"run {run_id} is in no work list: only a stopped or failed run that "
                            "was not restarted or skipped can be assigned")
    if entry["assigned_to"] != user:
        _assign(db, run_id, Assignment(user, entry["reason"], note or f"handed over by {actor}"),
                actor=actor, now=now)
    return entry_view(store.open_entry(db, RUN, str(run_id)) or entry, db)


def entry_view(entry: dict[str, Any], db: Database) -> dict[str, Any]:
    view = {
        "id": entry["id"],
        "kind": entry["object_kind"],
        "object": f"{entry['object_kind']}/{entry['object_id']}",
        "assigned_to": entry["assigned_to"],
        "reason": entry["reason"],
        "assigned_at": entry["assigned_at"],
        "cleared_at": entry["cleared_at"],
    }
    if entry["object_kind"] == RUN:
        run = store_runs.get_run_record(db, int(entry["object_id"]))
        view["campaign"] = run.campaign if run else None
        view["stage"] = run.stage if run else None
        view["status"] = run.status if run else None
    return view


def worklist(db: Database, *, user: str | None, all_users: bool = False,
             include_cleared: bool = False) -> list[dict[str, Any]]:
    return [entry_view(e, db) for e in store.entries(db, assigned_to=user, all_users=all_users,
                                                     include_cleared=include_cleared)]


def assignee(db: Database, run_id: int) -> str | None:
    entry = store.open_entry(db, RUN, str(run_id))
    return None if entry is None else entry["assigned_to"]
