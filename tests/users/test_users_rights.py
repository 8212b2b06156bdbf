"""Messages respect the rights of the user who created the campaign or scenario."""

from __future__ import annotations

from users_support import T0, campaign_yaml

T1 = "2027-03-01T09:05:00Z"


def sent_to(rows) -> list[str]:
    return sorted(r["contact"] for r in rows(
        "SELECT contact FROM outbox WHERE message_id NOT LIKE 'notify-%'"))


def test_campaign_sends_only_to_the_creators_groups_and_counts_the_rest(ok, world, rows):
    ok("users", "add", "alice", "--groups", "vip,staff")
    world.apply(campaign_yaml(), as_user="alice")
    assert rows("SELECT created_by FROM objects WHERE name = 'spring'") == [
        {"created_by": "alice"}]
    assert ok("describe", "campaign", "spring", "-o", "json").json["created_by"] == "alice"
    world.launch(as_user="alice")
    ok("--now", T1, "tick")
    assert sent_to(rows) == ["s1", "v1", "v2"]
    run = ok("get", "runs", "-o", "json").json[0]
    assert run["left_out"] == {"rights": 2, "reason": "outside alice's groups (staff, vip)"}
    described = ok("describe", "run", str(run["id"]), "-o", "json").json
    assert described["left_out"]["rights"] == 2
    table = ok("get", "runs").stdout
    assert "2 (outside alice's groups" in table
    log = ok("log", "--run", str(run["id"]), "-o", "json").json
    assert any("2 contacts left out: outside alice's groups" in (row.get("details") or "")
               for row in log), log


def test_the_creator_stays_the_first_applier(ok, world, rows):
    ok("users", "add", "alice", "--groups", "vip")
    world.apply(campaign_yaml(), as_user="alice")
    world.apply(campaign_yaml().replace("Hello", "Hello again"), as_user="bob")
    assert rows("SELECT created_by, version FROM objects WHERE name = 'spring'") == [
        {"created_by": "alice", "version": 2}]
    world.launch(as_user="bob")
    ok("--now", T1, "tick")
    assert sent_to(rows) == ["v1", "v2"]


def test_unknown_creator_or_unrestricted_user_sends_to_everyone(ok, world, rows):
    ok("users", "add", "carol")  # a user without restrictions
    world.apply(campaign_yaml(), as_user="carol")
    world.apply(campaign_yaml("autumn"), as_user="stranger", file="autumn.yaml")
    world.launch(as_user="carol")
    world.launch("autumn", as_user="stranger")
    ok("--now", T1, "tick")
    runs = ok("get", "runs", "-o", "json").json
    assert [r["left_out"]["rights"] for r in runs] == [0, 0]
    assert len(sent_to(rows)) == 10


def test_message_type_outside_the_rights_is_refused_at_apply(ok, cli, world, rows, write_yaml):
    ok("users", "add", "alice", "--message-types", "transactional")
    refused = cli("--now", T0, "apply", str(write_yaml("c.yaml", campaign_yaml())),
                  "--as", "alice")
    assert refused.exit_code == 1, refused
    assert "message type promotional is outside alice's message types" in refused.stderr
    assert rows("SELECT count(*) AS n FROM objects") == [{"n": 0}]
    dry = cli("--now", T0, "apply", str(write_yaml("c.yaml", campaign_yaml())), "--dry-run",
              "--as", "alice")
    assert dry.exit_code == 1 and "outside alice's message types" in dry.stderr
    untyped = cli("--now", T0, "apply", str(write_yaml("u.yaml", campaign_yaml(
        message_type=None))), "--as", "alice")
    assert untyped.exit_code == 1 and "(no type)" in untyped.stderr
    world.apply(campaign_yaml(message_type="transactional"), as_user="alice", file="t.yaml")


def test_rights_narrowed_after_creation_leave_the_whole_run_out(ok, world, rows):
    ok("users", "add", "alice")
    world.apply(campaign_yaml(), as_user="alice")
    world.launch(as_user="alice")
    ok("users", "set", "alice", "--message-types", "transactional")
    ok("--now", T1, "tick")
    assert sent_to(rows) == []
    run = ok("get", "runs", "-o", "json").json[0]
    assert run["left_out"]["rights"] == 5
    assert "promotional is outside alice's message types" in run["left_out"]["reason"]


SCENARIO = """\
kind: Scenario
name: promo
reentry: parallel
launch: {type: manual}
steps:
  - id: offer
    send: {message_type: promotional, subject: "Offer {{ id }}", body: "10% off"}
"""


def test_scenario_launch_leaves_out_contacts_outside_the_creators_groups(ok, cli, world, rows):
    ok("users", "add", "alice", "--groups", "vip")
    world.apply(SCENARIO, as_user="alice")
    ok("activate", "scenario", "promo")
    counted = ok("start", "scenario", "promo", "--group", "fr", "--count")
    assert counted.stdout.strip() == "2"
    assert "1 targeted contact(s) left out for the creator's rights: outside alice's groups " \
        "(vip)" in counted.stderr
    launched = ok("start", "scenario", "promo", "--all", "--yes", "-o", "json").json
    assert launched["targeted"] == 5 and launched["entered"] == 2
    assert launched["left_out"] == {"rights": 3, "reason": "outside alice's groups (vip)"}
    ok("--now", T1, "tick")
    ok("--now", "2027-03-01T09:10:00Z", "tick")
    assert sent_to(rows) == ["v1", "v2"]
    result = ok("get", "launches", "-o", "json").json[0]
    assert result["other"] == 3 and result["success"] == 2
    assert result["left_out"]["rights"] == 3
    nobody = cli("--now", T0, "start", "scenario", "promo", "--group", "staff", "--yes")
    assert nobody.exit_code == 1 and "left out" in nobody.stderr


EVENT_SCENARIO = """\
kind: Scenario
name: welcome
launch: {type: event, event: signup}
steps:
  - id: hello
    send: {message_type: promotional, subject: "Welcome {{ id }}", body: "Hi"}
"""


def test_event_captures_leave_out_contacts_outside_the_creators_groups(ok, world, rows):
    ok("users", "add", "alice", "--groups", "vip")
    world.apply(EVENT_SCENARIO, as_user="alice")
    ok("activate", "scenario", "welcome")
    for contact in ("v1", "n1", "s1"):
        ok("events", "emit", "signup", "--contact", contact)
    ok("--now", T1, "tick")
    ok("--now", "2027-03-01T09:10:00Z", "tick")
    assert [p["contact"] for p in ok("profiles", "scenario", "welcome", "-o", "json").json] == [
        "v1"]
    assert sent_to(rows) == ["v1"]
    logged = rows("SELECT details FROM exec_log WHERE event = 'Profiles Left Out'")
    assert [r["details"] for r in logged] == [
        "2 capture(s) on event signup left out for the creator's rights: outside alice's groups "
        "(vip)"]
