"""Commands: init, config get|set."""

from __future__ import annotations

from typing import Annotated

import typer

from campctl.commands.common import app_context, emit, emit_object, notice
from campctl.errors import UsageProblem

BOOL_KEYS = {"four_eyes", "strict_users"}


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("init", help="Create the state file (exit 0 if it already exists).")(init)
    config = typer.Typer(help="State-wide settings: four_eyes, notify_channel, notify_to, "
                         "strict_users.",
                         no_args_is_help=True, rich_markup_mode=None)
    config.command("get", help="Show one setting, or all of them.")(config_get)
    config.command("set", help="Change a setting; an empty VALUE resets it to its default.")(
        config_set
    )
    app.add_typer(config, name="config")
    app.command("backup", help="Copy the state file to PATH while campctl keeps running "
                "(SQLite backup API; the copy is 0600).")(backup)


def init(ctx: typer.Context) -> None:
    app = app_context(ctx)
    existed = None if app.state.is_postgres else app.state.exists()
    from campctl.store.db import schema_version

    db = app.db(create=True)
    if existed is None:
        existed = not db.created
    version = schema_version(db)
    if app.json:
        emit_object(app, {"state": app.state.display(), "schema_version": version,
                          "created": not existed})
    else:
        word = "exists" if existed else "created"
        what = "PostgreSQL state" if app.state.is_postgres else "state file"
        notice(app, f"{what} {app.state.display()} {word} (schema version {version})")


def _check_key(key: str) -> None:
    from campctl.store.config import CONFIG_KEYS

    if key not in CONFIG_KEYS:
        raise UsageProblem(f"unknown setting {key!r}; known settings: {', '.join(CONFIG_KEYS)}")


def config_get(
    ctx: typer.Context,
    key: Annotated[str | None,
                   typer.Argument(help="Setting name; all settings if omitted.")] = None,
) -> None:
    from campctl.store.config import all_config

    app = app_context(ctx)
    settings = all_config(app.db())
    if key is not None:
        _check_key(key)
        if app.json:
            emit_object(app, {"key": key, "value": settings[key]})
        else:
            app.out().print(settings[key] if settings[key] is not None else "", markup=False)
        return
    emit(app, [{"key": k, "value": v} for k, v in settings.items()],
         [("key", "KEY"), ("value", "VALUE")])


def config_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(
        help="four_eyes | notify_channel | notify_to | strict_users")],
    value: Annotated[str, typer.Argument(
        help="New value (four_eyes, strict_users: true or false).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the history.")] = None,
) -> None:
    from campctl.store import history
    from campctl.store.config import get_config, set_config

    app = app_context(ctx)
    _check_key(key)
    if key in BOOL_KEYS:
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise UsageProblem(f"{key} takes true or false, not {value!r}")
        value = lowered
    db = app.db(create=True)
    with db.atomic():
        if key == "strict_users":
            from campctl.engine.users import check_strict_setting

            check_strict_setting(db, value, app.actor)
        old = get_config(db, key)
        set_config(db, key, value or None)
        history.record(db, history.HistoryEntry(
            kind="config", name=key, action="set", actor=app.actor, from_status=old,
            to_status=value or None, note=note), now=app.now)
    notice(app, f"{key} = {value or '(default)'}")


def backup(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Where to write the copy (must not exist).")],
) -> None:
    from campctl.store.db import backup_to

    app = app_context(ctx)
    size = backup_to(app.db(), path)
    if app.json:
        emit_object(app, {"backup": path, "bytes": size})
    else:
        notice(app, f"backed up {app.state_path} to {path} ({size} bytes)")
