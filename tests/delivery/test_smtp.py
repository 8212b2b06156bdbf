"""SMTP channel against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from datetime import timedelta

import pytest
from store_support import dump_lines, is_pg

from campctl.engine.context import TickContext
from campctl.engine.delivery import deliver_due
from campctl.timeutil import parse_instant

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
NOW = parse_instant("2027-03-01T09:00:00Z")


def smtp_spec(port: int, **extra) -> dict:
    return {"type": "smtp", "host": "127.0.0.1", "port": port, "from": "Shop <news@example.com>",
            "timeout": 5, **extra}


def setup_run(arrange, port: int, n: int = 3, **extra) -> tuple[int, list[int]]:
    arrange.channel("mail", smtp_spec(port, **extra))
    ids = arrange.contacts(n)
    run = arrange.run(channel="mail")
    arrange.items(run, ids, channel="mail")
    return run, ids


def test_smtp_success_one_connection_deterministic_message_id(arrange, db, smtp_server):
    run, ids = setup_run(arrange, smtp_server.port, connections=1)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 3, report
    got = sorted(smtp_server.messages, key=lambda m: m["to"])
    assert [m["to"] for m in got] == [["c0@example.com"], ["c1@example.com"], ["c2@example.com"]]
    assert got[0]["message_id"] == f"<m-{run}--{ids[0]}@campctl>"
    assert got[0]["subject"] == "Hello N0"
    assert got[0]["body"] == "Hi N0, id c0."
    assert len({m["session"] for m in got}) == 1  # one connection for the batch
    assert arrange.statuses(run) == {"sent": 3}
    # SMTP messages are not copied into the outbox (that is the outbox channel's record).
    assert arrange.rows("SELECT count(*) AS n FROM outbox") == [{"n": 0}]


def test_smtp_4xx_is_retried_later_with_the_same_message_id(arrange, db, smtp_server):
    run, _ = setup_run(arrange, smtp_server.port, n=2)
    smtp_server.script = ["451 4.3.0 try again later"]
    first = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (first.sent, first.retried, first.failed) == (1, 1, 0)
    waiting = arrange.rows("SELECT message_id, attempts, last_error, next_attempt_at, status"
                           " FROM queue_items WHERE status = 'queued'")
    assert len(waiting) == 1
    assert waiting[0]["attempts"] == 1
    assert "451" in waiting[0]["last_error"]
    assert waiting[0]["next_attempt_at"] == "2027-03-01T09:01:00Z"
    too_early = deliver_due(TickContext(db, NOW + timedelta(seconds=30), {}), run_ids=[run],
                            scenario_items=False)
    assert too_early.sent == 0
    later = deliver_due(TickContext(db, NOW + timedelta(minutes=2), {}), run_ids=[run],
                        scenario_items=False)
    assert later.sent == 1
    ids_seen = [m["message_id"] for m in smtp_server.messages]
    assert f"<{waiting[0]['message_id']}@campctl>" in ids_seen
    assert len(ids_seen) == len(set(ids_seen)) == 2


def test_smtp_5xx_fails_permanently_and_others_go(arrange, db, smtp_server):
    run, ids = setup_run(arrange, smtp_server.port, n=3)
    smtp_server.rcpt_script = {"c1@example.com": "550 5.1.1 no such user"}
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.failed, report.retried) == (2, 1, 0)
    bad = arrange.rows("SELECT status, last_error FROM queue_items WHERE contact_id = ?",
                       (ids[1],))
    assert bad[0]["status"] == "failed" and "550" in bad[0]["last_error"]


def test_smtp_data_5xx_is_permanent(arrange, db, smtp_server):
    run, _ = setup_run(arrange, smtp_server.port, n=1)
    smtp_server.script = ["554 5.7.1 rejected as spam"]
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 1
    assert "554" in arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]


def test_smtp_dropped_connection_mid_batch(arrange, db, smtp_server):
    run, ids = setup_run(arrange, smtp_server.port, n=4)
    smtp_server.script = ["250 OK", "drop"]
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (report.sent, report.retried) == (3, 1), report
    dropped = arrange.rows("SELECT message_id, last_error FROM queue_items WHERE status='queued'")
    assert len(dropped) == 1 and "connection lost" in dropped[0]["last_error"]
    later = deliver_due(TickContext(db, NOW + timedelta(minutes=5), {}), run_ids=[run],
                        scenario_items=False)
    assert later.sent == 1
    ids_seen = [m["message_id"] for m in smtp_server.messages]
    assert sorted(ids_seen) == sorted(f"<m-{run}--{c}@campctl>" for c in ids)


def test_smtp_server_down_retries_then_fails(arrange, db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run, _ = setup_run(arrange, port, n=2, max_attempts=2)
    first = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert (first.sent, first.retried) == (0, 2)
    errors = {r["last_error"] for r in arrange.rows("SELECT last_error FROM queue_items")}
    assert len(errors) == 1 and "cannot connect to 127.0.0.1" in errors.pop()
    second = deliver_due(TickContext(db, NOW + timedelta(minutes=2), {}), run_ids=[run],
                         scenario_items=False)
    assert (second.sent, second.failed) == (0, 2)
    assert arrange.statuses(run) == {"failed": 2}


def test_smtp_recipient_without_email_fails_permanently(arrange, db, smtp_server):
    arrange.channel("mail", smtp_spec(smtp_server.port))
    phone_only = arrange.contact("p", None, attrs={"first_name": "P"}, phone="+331234")
    run = arrange.run(channel="mail")
    arrange.items(run, [phone_only], channel="mail")
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.failed == 1
    assert "email" in arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]


def test_smtp_login_with_secret_from_environment(arrange, db, smtp_auth_server, state):
    run, _ = setup_run(arrange, smtp_auth_server.port, n=2, username="${SMTP_USER}",
                       password="${SMTP_PASSWORD}", connections=1)
    missing = deliver_due(TickContext(db, NOW, {"SMTP_USER": "mailer"}), run_ids=[run],
                          scenario_items=False)
    assert (missing.sent, missing.retried) == (0, 2)
    reason = arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]
    assert "SMTP_PASSWORD is not set" in reason
    assert smtp_auth_server.auth == []
    environ = {"SMTP_USER": "mailer", "SMTP_PASSWORD": "s3cret"}
    ok = deliver_due(TickContext(db, NOW + timedelta(minutes=2), environ), run_ids=[run],
                     scenario_items=False)
    assert ok.sent == 2
    assert smtp_auth_server.auth == [("mailer", "s3cret")]
    if is_pg(state):  # no files: nothing the database holds has the password
        assert not any("s3cret" in line for line in dump_lines(state))
        return
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in state.parent.glob(state.name + "*"):
        assert b"s3cret" not in path.read_bytes()


def test_smtp_wrong_password_is_retried_not_sent(arrange, db, smtp_auth_server):
    run, _ = setup_run(arrange, smtp_auth_server.port, n=1, username="mailer",
                       password="${SMTP_PASSWORD}")
    report = deliver_due(TickContext(db, NOW, {"SMTP_PASSWORD": "wrong"}), run_ids=[run],
                         scenario_items=False)
    assert report.retried == 1
    assert "535" in arrange.rows("SELECT last_error FROM queue_items")[0]["last_error"]


@pytest.fixture
def tls_files(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the STARTTLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, timeout=300,
    )
    if proc.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {proc.stderr[-200:]!r}")
    return cert, key


def test_smtp_starttls(arrange, db, tls_files, monkeypatch, smtp_factory):
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = smtp_factory(tls_context=context, require_starttls=True)
    # The client trusts the test certificate through OpenSSL's standard variable.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    run, _ = setup_run(arrange, server.port, n=1, starttls=True)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 1, arrange.rows("SELECT last_error FROM queue_items")
    assert len(server.messages) == 1


def test_smtp_without_starttls_is_refused_by_a_tls_only_server(arrange, db, tls_files,
                                                               smtp_factory):
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = smtp_factory(tls_context=context, require_starttls=True)
    run, _ = setup_run(arrange, server.port, n=1)
    report = deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False)
    assert report.sent == 0 and server.messages == []


def test_smtp_non_ascii_sender_subject_and_body(arrange, db, smtp_server):
    from email.header import decode_header, make_header

    arrange.channel("mail", smtp_spec(smtp_server.port,
                                      **{"from": "Boutique Été <news@example.com>"}))
    c = arrange.contact("z", "z@example.com", attrs={"first_name": "Zoë"})
    run = arrange.run(channel="mail", subject="Réduction pour {{ first_name }}",
                      body="Bonjour {{ first_name }} — été")
    arrange.items(run, [c], channel="mail")
    assert deliver_due(TickContext(db, NOW, {}), run_ids=[run], scenario_items=False).sent == 1
    got = smtp_server.messages[0]
    assert got["mail_from"] == "news@example.com"
    assert str(make_header(decode_header(got["from"]))) == "Boutique Été <news@example.com>"
    assert str(make_header(decode_header(got["subject"]))) == "Réduction pour Zoë"
    assert got["body"] == "Bonjour Zoë — été"
