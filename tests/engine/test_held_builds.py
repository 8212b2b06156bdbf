"""Held builds are visible: a date-triggered campaign whose send schedule starts after several
queue builds sends one message per held build to each contact; validate, preview campaign and
tick --dry-run say how many beforehand."""

from __future__ import annotations

CAMPAIGN = """\
kind: Campaign
name: digest
timezone: UTC
type: date-triggered
channel: outbox
audience: {{all: true}}
message: {{subject: "Digest", body: "news"}}
schedule:
  cron: "0 14 * * *"
  send_start: {send_start}
"""
HELD = CAMPAIGN.format(send_start='{at: "2027-03-05T10:00"}')


def _launch(cli, tmp_path, write_yaml) -> None:
    (tmp_path / "c.csv").write_text("id,email\na1,a1@example.org\na2,a2@example.org\n")
    for args in (("contacts", "import", str(tmp_path / "c.csv")),
                 ("apply", str(write_yaml("held.yaml", HELD))), ("submit", "campaign", "digest"),
                 ("--as", "other", "approve", "campaign", "digest"),
                 ("start", "campaign", "digest")):
        assert cli(*args).exit_code == 0, args


def test_validate_warns_with_the_number_and_exits_0(cli, write_yaml):
    result = cli("validate", str(write_yaml("held.yaml", HELD)))
    assert result.exit_code == 0, result
    assert "held.yaml:1:1: warning: campaign digest: if launched now, 4 queue build(s)" \
        in result.stdout
    assert "one message per build (4)" in result.stdout
    data = cli("validate", str(write_yaml("held.yaml", HELD)), "-o", "json").json
    assert data["valid"] is True and len(data["warnings"]) == 1
    github = cli("validate", "--format", "github", str(write_yaml("held.yaml", HELD)))
    assert github.stdout.startswith("::warning file=")


def test_no_warning_when_sending_starts_with_the_first_build(cli, write_yaml):
    for send_start in ("immediately", '{at: "2027-03-01T15:00"}'):
        path = write_yaml("plain.yaml", CAMPAIGN.format(send_start=send_start))
        result = cli("validate", str(path), "-o", "json")
        assert result.exit_code == 0 and "warnings" not in result.json, result


def test_preview_and_dry_run_say_so_and_the_number_holds(cli, rows, tmp_path, write_yaml):
    _launch(cli, tmp_path, write_yaml)
    preview = cli("preview", "campaign", "digest", "-o", "json")
    assert [r["held_until"] for r in preview.json] == ["2027-03-05T10:00:00Z"] * 4 + [None]
    assert "4 queue build(s)" in preview.stderr
    assert "HELD UNTIL" in cli("preview", "campaign", "digest").stdout
    dry = cli("tick", "--dry-run", "-o", "json", "--now", "2027-03-01T14:00:00Z").json
    assert any("digest" in n and "4 queue build(s)" in n for n in dry["notes"]), dry
    text = cli("tick", "--dry-run", "--now", "2027-03-01T14:00:00Z").stdout
    assert "one message per build (4)" in text

    for day in range(1, 5):
        assert cli("tick", "--now", f"2027-03-0{day}T14:00:00Z").exit_code == 0
    assert rows("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert cli("tick", "--now", "2027-03-05T10:00:00Z").exit_code == 0
    per_contact = rows("SELECT contact, count(*) AS n FROM outbox GROUP BY contact "
                       "ORDER BY contact")
    assert per_contact == [{"contact": "a1", "n": 4}, {"contact": "a2", "n": 4}]
    # Once sending has started nothing is held any more, and the dry run stops saying so.
    later = cli("tick", "--dry-run", "-o", "json", "--now", "2027-03-05T10:01:00Z").json
    assert not any("queue build" in n for n in later["notes"])


def test_event_campaign_with_a_cron_batch_is_warned_too(cli, write_yaml):
    path = write_yaml("events.yaml", """\
kind: Campaign
name: basket
timezone: UTC
type: event-triggered
trigger: {event: basket-left}
audience: {all: true}
channel: outbox
message: {subject: "Basket", body: "come back"}
schedule:
  queue_every: "0 * * * *"
  send_start: {at: "2027-03-01T12:00"}
""")
    result = cli("validate", str(path))
    assert result.exit_code == 0, result
    assert "campaign basket: if launched now, 3 queue build(s)" in result.stdout
