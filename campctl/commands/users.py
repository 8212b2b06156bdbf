"""Commands: users list|add|set|remove, worklist, assign run."""

from __future__ import annotations

from typing import Annotated

import typer

from campctl.commands.common import (
    Column,
    app_context,
    emit,
    emit_object,
    notice,
    object_zones,
    require_filters,
)

NOTE = typer.Option("--note", help="Why, for the history.")
EMAIL_HELP = "Address for notifications (through notify_channel)."
GROUPS_HELP = ("Comma-separated contact groups the user may send to (a contact in any of them); "
               "'' = no restriction.")
TYPES_HELP = ("Comma-separated message types the user may create and send; '' = no "
              "restriction.")

USER_COLUMNS: list[Column] = [
    ("name", "NAME"),
    ("email", "EMAIL"),
    ("groups", "GROUPS", lambda v, _r: ",".join(v) if v is not None else "any"),
    ("message_types", "MESSAGE TYPES", lambda v, _r: ",".join(v) if v is not None else "any"),
    ("worklist", "WORK LIST"),
]
WORKLIST_COLUMNS: list[Column] = [
    ("object", "OBJECT"),
    ("campaign", "CAMPAIGN"),
    ("stage", "STAGE"),
    ("status", "STATUS"),
    ("assigned_to", "ASSIGNED TO"),
    ("reason", "REASON"),
    ("assigned_at", "ASSIGNED AT"),
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    users = typer.Typer(help="Users who act (--as), their notification address and sending "
                        "rights. A policy model for a shared state file, not authentication.",
                        no_args_is_help=True, rich_markup_mode=None)
    users.command("list", help="List users with their rights and open work-list items.")(
        list_users)
    users.command("add", help="Add a user.")(add_user)
    users.command("set", help="Change a user's address or rights ('' clears).")(set_user)
    users.command("remove", help="Remove a user (refused while they own restricted objects or "
                  "have open work-list items).")(remove_user)
    app.add_typer(users, name="users")
    groups["get"].command("users", help="List users (same as 'users list').")(list_users)
    groups["get"].command("user", hidden=True)(list_users)
    groups["describe"].command(
        "user", help="Show a user: rights, open work-list items, recent history.")(describe_user)
    groups["history"].command("user", help="Show the actions recorded for a user.")(
        history_user)
    app.command("worklist", help="Stopped and failed runs assigned to you (--as), or to "
                "--user, or to anyone (--all).")(worklist)
    assign = typer.Typer(help="Hand a work-list item to another user.", no_args_is_help=True,
                         rich_markup_mode=None)
    assign.command("run", help="Assign a stopped or failed run to USER's work list.")(assign_run)
    app.add_typer(assign, name="assign")


def list_users(ctx: typer.Context) -> None:
    from campctl.engine.users import user_view
    from campctl.store.users import list_users as stored
    from campctl.store.users import open_count

    app = app_context(ctx)
    db = app.db()
    rows = [user_view(u, open_items=open_count(db, u["name"])) for u in stored(db)]
    emit(app, rows, USER_COLUMNS, empty="no users (add one with 'campctl users add NAME')")


HISTORY_COLUMNS: list[Column] = [
    ("at", "AT"), ("actor", "ACTOR"), ("action", "ACTION"), ("from_status", "FROM"),
    ("to_status", "TO"), ("note", "NOTE"),
]


def describe_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
) -> None:
    from campctl.engine.users import require_user, user_view
    from campctl.engine.worklist import worklist as entries
    from campctl.store import history

    app = app_context(ctx)
    db = app.db()
    view = user_view(require_user(db, name))
    items = entries(db, user=name)
    view["worklist"] = [item["object"] for item in items]
    view["history"] = history.actions(db, "user", name)[-10:]
    if app.json:
        emit_object(app, view)
        return
    shown = {k: v for k, v in view.items() if k != "history"}
    shown["worklist"] = ", ".join(shown["worklist"]) or None
    for key in ("groups", "message_types"):
        shown[key] = ", ".join(shown[key]) if shown[key] is not None else "any"
    emit_object(app, shown, title=f"user/{name}")
    if view["history"]:
        emit(app, view["history"], HISTORY_COLUMNS, title="recent history")


def history_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name (a removed user's history remains).")],
) -> None:
    from campctl.errors import NotFound
    from campctl.store import history

    app = app_context(ctx)
    rows = history.actions(app.db(), "user", name)
    if not rows:
        raise NotFound(f"nothing recorded for user {name!r} (see 'campctl users list')")
    emit(app, rows, HISTORY_COLUMNS)


def add_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name, as given to --as.")],
    email: Annotated[str | None, typer.Option("--email", help=EMAIL_HELP)] = None,
    groups: Annotated[str | None, typer.Option("--groups", help=GROUPS_HELP)] = None,
    message_types: Annotated[str | None, typer.Option("--message-types", help=TYPES_HELP)] = None,
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import users

    app = app_context(ctx)
    group_list = users.parse_list(groups, "groups")
    type_list = users.parse_list(message_types, "message-types")
    db = app.db(create=True)
    with db.atomic():
        view = users.add_user(db, name, users.UserSettings(email or None, group_list, type_list),
                              actor=app.actor, now=app.now, note=note)
    _done(app, view, f"user {name} added")


def set_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    email: Annotated[str | None, typer.Option("--email", help=EMAIL_HELP)] = None,
    groups: Annotated[str | None, typer.Option("--groups", help=GROUPS_HELP)] = None,
    message_types: Annotated[str | None, typer.Option("--message-types", help=TYPES_HELP)] = None,
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import users

    app = app_context(ctx)
    changes: dict = {}
    if email is not None:
        changes["email"] = email or None
    if groups is not None:
        changes["groups"] = users.parse_list(groups, "groups")
    if message_types is not None:
        changes["message_types"] = users.parse_list(message_types, "message-types")
    db = app.db(create=True)
    with db.atomic():
        view = users.set_user(db, name, changes, actor=app.actor, now=app.now, note=note)
    _done(app, view, f"user {name} updated")


def remove_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine import users

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        view = users.remove_user(db, name=name, actor=app.actor, now=app.now, note=note)
    _done(app, view, f"user {name} removed")


def _done(app, view: dict, text: str) -> None:
    if app.json:
        emit_object(app, view)
    else:
        notice(app, text)


def worklist(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(
        "--user", help="Whose list (default: the actor, --as / CAMPCTL_USER).")] = None,
    all_users: Annotated[bool, typer.Option(
        "--all", help="Every open item, whoever it is assigned to (or no one).")] = False,
    cleared: Annotated[bool, typer.Option(
        "--cleared", help="Also items already cleared by restart or skip.")] = False,
) -> None:
    from campctl.engine.worklist import worklist as entries

    app = app_context(ctx)
    who = user or app.actor
    db = app.db()
    require_filters(db, user=user)
    rows = entries(db, user=who, all_users=all_users, include_cleared=cleared)
    emit(app, rows, WORKLIST_COLUMNS, zones=object_zones(db),
         empty="work list empty" if all_users else f"nothing in {who}'s work list")


def assign_run(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="ID", help="Run id.", min=1)],
    user: Annotated[str, typer.Argument(help="User who takes it over.")],
    note: Annotated[str | None, NOTE] = None,
) -> None:
    from campctl.engine.worklist import assign_run as assign

    app = app_context(ctx)
    db = app.db(create=True)
    with db.atomic():
        view = assign(db, run_id=run_id, user=user, actor=app.actor, now=app.now, note=note)
    _done(app, view, f"run {run_id} assigned to {user}")
