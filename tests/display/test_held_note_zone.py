"""preview's note about held builds quotes its instants in the campaign's zone."""

from __future__ import annotations

from tests.display.conftest import UTC_TEXT

HELD = """\
kind: Campaign
name: digest
timezone: Europe/Paris
type: date-triggered
channel: outbox
audience: {all: true}
message: {subject: "Digest", body: "news"}
schedule:
  cron: "0 14 * * *"
  send_start: {at: "2027-03-05T10:00"}
"""


def test_the_held_builds_note_speaks_local_time(cli, tmp_path, write_yaml):
    (tmp_path / "c.csv").write_text("id,email\na1,a1@example.org\n")
    for args in (("contacts", "import", str(tmp_path / "c.csv")),
                 ("apply", str(write_yaml("held.yaml", HELD))), ("submit", "campaign", "digest"),
                 ("--as", "other", "approve", "campaign", "digest"),
                 ("start", "campaign", "digest")):
        assert cli(*args).exit_code == 0, args
    result = cli("preview", "campaign", "digest")
    assert result.exit_code == 0, result
    assert "send_start 2027-03-05 10:00 CET" in result.stderr, result
    assert not UTC_TEXT.search(result.stderr + result.stdout), result
    assert "2027-03-05 10:00 CET" in result.stdout  # the HELD UNTIL column
