"""`campctl users` and `strict_users`: the JSON shape, history rows, and who may act."""

from __future__ import annotations

from users_support import T0, campaign_yaml

USER_KEYS = {"name", "email", "groups", "message_types", "created_at", "updated_at"}


def test_add_set_list_remove_with_history(ok, cli, rows):
    added = ok("users", "add", "alice", "--email", "alice@example.com", "--groups", "vip,staff",
               "--message-types", "promotional", "-o", "json").json
    assert added == {"name": "alice", "email": "alice@example.com", "groups": ["staff", "vip"],
                     "message_types": ["promotional"], "created_at": T0, "updated_at": T0}
    listed = ok("users", "list", "-o", "json").json
    assert [set(u) for u in listed] == [USER_KEYS | {"worklist"}]
    assert listed[0]["worklist"] == 0
    changed = ok("--now", "2027-03-02T09:00:00Z", "users", "set", "alice", "--groups", "",
                 "-o", "json").json
    assert changed["groups"] is None and changed["message_types"] == ["promotional"]
    assert changed["updated_at"] == "2027-03-02T09:00:00Z"
    assert cli("users", "add", "alice").exit_code == 1  # exists already
    assert cli("users", "set", "nobody", "--email", "x@example.com").exit_code == 3
    assert cli("users", "add", "eve", "--email", "not-an-address").exit_code == 2
    assert cli("users", "add", "eve", "--groups", "Bad Group").exit_code == 2
    described = ok("describe", "user", "alice", "-o", "json").json
    assert described["worklist"] == [] and [h["action"] for h in described["history"]] == [
        "created", "updated"]
    assert ok("get", "users", "-o", "json").json == ok("users", "list", "-o", "json").json
    ok("users", "remove", "alice", "--note", "left the team")
    assert ok("users", "list", "-o", "json").json == []
    assert cli("describe", "user", "alice").exit_code == 3
    removed = ok("history", "user", "alice", "-o", "json").json
    assert [h["action"] for h in removed] == ["created", "updated", "deleted"]
    assert cli("history", "user", "never").exit_code == 3
    history = rows("SELECT actor, action, note FROM history WHERE kind = 'user' ORDER BY id")
    assert [h["action"] for h in history] == ["created", "updated", "deleted"]
    assert history[0]["actor"] == "tester" and history[2]["note"] == "left the team"


def test_unknown_actor_works_until_strict_users_is_on(ok, cli, write_yaml):
    defs = write_yaml("c.yaml", campaign_yaml())
    ok("apply", str(defs), "--as", "stranger")  # not strict: anyone may act, as before
    refused = cli("config", "set", "strict_users", "true", "--as", "stranger")
    assert refused.exit_code == 1 and "not a user" in refused.stderr
    ok("users", "add", "alice", "--as", "stranger")
    ok("config", "set", "strict_users", "true", "--as", "alice")

    denied = cli("submit", "campaign", "spring", "--as", "stranger")
    assert denied.exit_code == 1, denied
    assert denied.stderr.startswith("error: unknown user 'stranger' and strict_users is on")
    assert cli("users", "add", "bob", "--as", "stranger").exit_code == 1
    assert cli("contacts", "forget", "v1", "--as", "stranger").exit_code == 1
    # Reading is not acting; the scheduler is not a person.
    ok("get", "campaigns", "--as", "stranger")
    ok("tick", "--as", "stranger")
    ok("submit", "campaign", "spring", "--as", "alice")
    # The last user cannot be removed while strict_users would then lock everyone out.
    assert cli("users", "remove", "alice", "--as", "alice").exit_code == 1
    ok("config", "set", "strict_users", "false", "--as", "alice")
    ok("approve", "campaign", "spring", "--as", "stranger")


def test_remove_refused_while_the_user_owns_restricted_objects(ok, cli, write_yaml):
    ok("users", "add", "alice", "--groups", "vip")
    ok("apply", str(write_yaml("c.yaml", campaign_yaml())), "--as", "alice")
    refused = cli("users", "remove", "alice")
    assert refused.exit_code == 1 and "campaign/spring" in refused.stderr
    ok("delete", "campaign", "spring")
    ok("users", "remove", "alice")
