"""Users and their sending rights: who may act, what a creator's rights leave out of a send, and
the work lists of stopped and failed runs.

This is an accountability and policy model for one shared state file, not authentication: anyone
who can write the file can name any actor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from campctl.errors import ActionRefused, NotFound, UsageProblem, ValidationFailed
from campctl.store import history
from campctl.store import users as store
from campctl.store.config import get_config
from campctl.store.db import Database

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")
TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Commands run by the scheduler itself, not by a person: strict_users never refuses them.
ENGINE_COMMANDS = frozenset({"tick", "daemon", "init", "demo"})


@dataclass(frozen=True)
class Restriction:
    """What a creator's rights allow of one send: an SQL condition on contacts row `c`, and the
    reason shown for the contacts it leaves out."""

    user: str
    sql: str
    params: list[Any]
    reason: str
    groups: tuple[str, ...] | None
    allowed: bool

    def narrow(self, source_sql: str,
               params: Sequence[Any] | dict) -> tuple[str, Sequence[Any] | dict]:
        """A `SELECT contact_id ...` source narrowed to the contacts these rights allow."""
        return store.restricted_source(source_sql, params, self.groups, self.allowed)

    def left_out(self, db: Database, source_sql: str, params: Sequence[Any] | dict) -> int:
        """How many contacts of the source these rights leave out."""
        return store.count_outside_source(db, source_sql, params, self.groups, self.allowed)


# --- users --------------------------------------------------------------------------------------

def parse_list(text: str | None, what: str) -> list[str] | None:
    """`--groups a,b` → ['a', 'b']; '' → None (no restriction); None → None."""
    if text is None or not text.strip():
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if not TOKEN.match(v)]
    if bad:
        raise UsageProblem(f"--{what}: {', '.join(repr(b) for b in bad)} is not a valid name "
                           "(lowercase letters, digits, '-' and '_')")
    return sorted(set(values))


def _check_name(name: str) -> None:
    if not USER_NAME.match(name):
        raise UsageProblem(f"user name {name!r} is not valid: letters, digits, '.', '_', '@', '-'"
                           " (at most 63 characters, starting with a letter or digit)")


def _check_email(email: str | None) -> None:
    if email is not None and not EMAIL.match(email):
        raise UsageProblem(f"--email {email!r} is not an email address")


def user_view(user: dict[str, Any], *, open_items: int | None = None) -> dict[str, Any]:
    view = {
        "name": user["name"],
        "email": user["email"],
        "groups": user["groups"],
        "message_types": user["message_types"],
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
    }
    if open_items is not None:
        view["worklist"] = open_items
    return view


def require_user(db: Database, name: str) -> dict[str, Any]:
    user = store.get_user(db, name)
    if user is None:
        raise NotFound(f"no user {name!r} (list them with 'campctl users list')")
    return user


@dataclass(frozen=True)
class UserSettings:
    """Where a user is told (`email`, None: nowhere) and what they may send to: contact
    `groups` and `message_types` (None: any)."""

    email: str | None = None
    groups: list[str] | None = None
    message_types: list[str] | None = None


def add_user(db: Database, name: str, settings: UserSettings, *, actor: str, now: datetime,
             note: str | None = None) -> dict[str, Any]:
    email, groups, message_types = settings.email, settings.groups, settings.message_types
    _check_name(name)
    _check_email(email)
    if not store.insert_user(db, name=name, email=email, groups=groups,
                             message_types=message_types, now=now):
        raise ActionRefused(f"user {name} exists already; change it with 'campctl users set "
                            f"{name} ...'")
    history.record(db, history.HistoryEntry(
        kind="user", name=name, action="created", actor=actor,
        note=note or _describe_rights(groups, message_types, email)), now=now)
    return user_view(require_user(db, name))


def set_user(db: Database, name: str, changes: Mapping[str, Any], *, actor: str, now: datetime,
             note: str | None = None) -> dict[str, Any]:
    """Change the `UserSettings` fields named in `changes`; `None` clears one (no restriction,
    no address)."""
    user = require_user(db, name)
    new = replace(UserSettings(user["email"], user["groups"], user["message_types"]), **changes)
    new_email, new_groups, new_types = new.email, new.groups, new.message_types
    _check_email(new_email)
    if (new_email, new_groups, new_types) == (user["email"], user["groups"],
                                               user["message_types"]):
        return user_view(user)
    store.update_user(db, name=name, email=new_email, groups=new_groups,
                      message_types=new_types, now=now)
    history.record(db, history.HistoryEntry(
        kind="user", name=name, action="updated", actor=actor,
        from_status=_describe_rights(user["groups"], user["message_types"], user["email"]),
        to_status=_describe_rights(new_groups, new_types, new_email), note=note), now=now)
    return user_view(require_user(db, name))


def remove_user(db: Database, *, name: str, actor: str, now: datetime,
                note: str | None = None) -> dict[str, Any]:
    user = require_user(db, name)
    owned = store.owned_objects(db, name)
    if owned and (user["groups"] is not None or user["message_types"] is not None):
        shown = ", ".join(owned[:5]) + (" ..." if len(owned) > 5 else "")
        raise ActionRefused(f"cannot remove user {name}: their sending restrictions apply to "
                            f"what they created ({shown}); delete those objects first")
    waiting = store.open_count(db, name)
    if waiting:
        raise ActionRefused(f"cannot remove user {name}: {waiting} item(s) in their work list; "
                            f"hand them over with 'campctl assign run ID USER' first")
    if strict(db) and store.user_count(db) == 1:
        raise ActionRefused(f"cannot remove user {name}: it is the last user and strict_users "
                            "is on (run 'campctl config set strict_users false' first)")
    store.delete_user(db, name)
    history.record(db, history.HistoryEntry(
        kind="user", name=name, action="deleted", actor=actor, note=note), now=now)
    return user_view(user)


def _describe_rights(groups: Sequence[str] | None, types: Sequence[str] | None,
                     email: str | None) -> str:
    parts = [f"email {email or '-'}",
             "groups " + (",".join(groups) if groups is not None else "any"),
             "message types " + (",".join(types) if types is not None else "any")]
    return "; ".join(parts)


# --- strict_users -------------------------------------------------------------------------------

def strict(db: Database) -> bool:
    return (get_config(db, "strict_users") or "false") == "true"


def check_actor(db: Database, actor: str, *, command: str | None) -> None:
    """With strict_users on, a command that changes state refuses an actor who is not a user."""
    if command in ENGINE_COMMANDS or not strict(db):
        return
    if store.get_user(db, actor) is None:
        raise ActionRefused(f"unknown user {actor!r} and strict_users is on: act as a known "
                            "user (--as NAME or CAMPCTL_USER; see 'campctl users list')")


def check_strict_setting(db: Database, value: str | None, actor: str) -> None:
    """Turning strict_users on must not lock everyone out."""
    if value == "true" and store.get_user(db, actor) is None:
        raise ActionRefused(f"cannot turn strict_users on as {actor!r}, who is not a user: add "
                            f"yourself first ('campctl users add {actor} --email ...')")


# --- creators and rights ------------------------------------------------------------------------

def record_creator(db: Database, *, kind: str, name: str, actor: str) -> None:
    store.set_created_by(db, kind, name, actor)


def message_types_of(kind: str, spec: dict) -> list[str | None]:
    """The message types an object sends (None: a message without a type)."""
    if kind == "Campaign":
        return [spec.get("message_type")]
    if kind == "Scenario":
        types: list[str | None] = []
        for step in spec.get("steps") or []:
            send = step.get("send") if isinstance(step, dict) else None
            if isinstance(send, dict):
                types.append(send.get("message_type"))
        return types
    return []


def _type_refusal(user: dict[str, Any], types: Iterable[str | None]) -> str | None:
    allowed = user["message_types"]
    if allowed is None:
        return None
    bad = sorted({t or "(no type)" for t in types if t not in allowed})
    if not bad:
        return None
    return (f"message type {', '.join(bad)} is outside {user['name']}'s message types "
            f"({', '.join(allowed) or 'none'})")


def apply_problems(db: Database, *, actor: str,
                   objects: Iterable[tuple[str, str, dict]]) -> list[str]:
    """Campaigns and scenarios the actor would create that send a message type outside the
    actor's rights (objects: kind, name, spec of those being created)."""
    user = store.get_user(db, actor)
    if user is None:
        return []
    problems = []
    for kind, name, spec in objects:
        why = _type_refusal(user, message_types_of(kind, spec))
        if why is not None:
            problems.append(f"{kind.lower()}/{name}: {why}")
    return problems


def check_apply(db: Database, *, actor: str, created: Iterable[tuple[str, str, dict]]) -> None:
    problems = apply_problems(db, actor=actor, objects=created)
    if problems:
        raise ValidationFailed(f"{actor} may not create {'; '.join(problems)}; nothing was "
                               "applied", problems)


def restriction_for(db: Database, *, kind: str, name: str,
                    message_types: Sequence[str | None]) -> Restriction | None:
    """The rights of the object's creator as a condition on contacts, or None when they allow
    everyone (creator unknown, not a user, or a user without restrictions)."""
    creator = store.created_by(db, kind, name)
    if creator is None:
        return None
    user = store.get_user(db, creator)
    if user is None:
        return None
    refusal = _type_refusal(user, message_types)
    if refusal is not None:
        sql, params = store.rights_where(None, allowed=False)
        return Restriction(creator, sql, params, refusal, None, False)
    if user["groups"] is None:
        return None
    sql, params = store.rights_where(user["groups"], allowed=True)
    reason = f"outside {creator}'s groups ({', '.join(user['groups']) or 'none'})"
    return Restriction(creator, sql, params, reason, tuple(user["groups"]), True)


def record_run_left_out(db: Database, run_id: int, restriction: Restriction | None,
                        selection: tuple[str, list] | None) -> int:
    """Count the contacts of the run's unrestricted selection that the rights leave out."""
    if restriction is None or selection is None:
        return 0
    count = store.count_outside(db, selection[0], selection[1],
                                (restriction.sql, restriction.params))
    store.set_run_left_out(db, run_id, count=count, reason=restriction.reason if count else None)
    return count


def left_out_view(count: int, reason: str | None) -> dict[str, Any]:
    return {"rights": count, "reason": reason}
