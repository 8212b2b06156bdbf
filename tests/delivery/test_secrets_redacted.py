"""Secrets never leave the environment: a receiver that echoes the credentials it got (a webhook
answering 400 with the request's headers and query, an SMTP server rejecting the login with the
password in its reply) leaves no trace of them in the state file, its -wal, a backup or any
output."""

from __future__ import annotations

import json
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from store_support import dump_lines, is_pg, tables_holding

from campctl.channels.redact import Redactor, display_spec, mask_url, redactor_for

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

TOKEN = "tok-Bearer-9f2c41aa"
KEY = "qk/Z+91xx&y"  # needs percent-encoding in a query
PASS = "hookpass-77ab"
LITERAL_SIG = "sig-literal-5d0e3"
SMTP_PASS = "smtp-S3cret-a81f"
SECRETS = {"HOOK_TOKEN": TOKEN, "HOOK_KEY": KEY, "HOOK_PASS": PASS, "SMTP_PASS": SMTP_PASS}
ALL_FORMS = [TOKEN, KEY, "qk%2FZ%2B91xx%26y", PASS, LITERAL_SIG, SMTP_PASS]


@pytest.fixture
def echo_hook() -> Iterator[str]:
    """A webhook that answers every POST with 400 and a body echoing its headers and path."""

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            payload = json.dumps({"auth": self.headers.get("Authorization"), "path": self.path,
                                  "headers": dict(self.headers)}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo_smtp() -> Iterator[int]:
    """An SMTP server that requires AUTH and rejects every login, quoting the password."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.delivery.conftest import _free_port

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # pragma: no cover
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 login {auth_data.login.decode()} with password "
                                  f"{auth_data.password.decode()} refused")

    port = _free_port()
    with warnings.catch_warnings():  # aiosmtpd warns about AUTH without TLS: wanted on loopback
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                                authenticator=authenticator, auth_require_tls=False,
                                auth_required=True, auth_exclude_mechanism=["LOGIN"])
        controller.start()
    yield port
    controller.stop()


def definitions(hook: str, smtp_port: int) -> str:
    campaigns = "".join(
        f"---\nkind: Campaign\nname: {name}\ntimezone: UTC\ntype: one-off\nchannel: {channel}\n"
        "audience: {all: true}\nmessage: {subject: \"s\", body: \"b\"}\n"
        "schedule: {queue: immediately, send: after_queue}\n"
        for name, channel in (("to-hook", "hook"), ("to-mail", "mail")))
    return (
        "kind: Channel\nname: hook\ntype: webhook\n"
        f"url: \"http://shop:${{HOOK_PASS}}@{hook}/hook?key=${{HOOK_KEY}}&sig={LITERAL_SIG}\"\n"
        'headers: {Authorization: "Bearer ${HOOK_TOKEN}", X-Plain: "visible"}\n'
        "---\nkind: Channel\nname: mail\ntype: smtp\nhost: 127.0.0.1\n"
        f"port: {smtp_port}\nusername: mailer\npassword: ${{SMTP_PASS}}\ntimeout: 5\n"
        "from: shop@example.org\n"
        + campaigns)


def test_echoed_credentials_are_masked_everywhere(cli, state, tmp_path, rows, write_yaml,
                                                  echo_hook, echo_smtp):
    (tmp_path / "c.csv").write_text("id,email\na1,a1@example.org\na2,a2@example.org\n")
    path = write_yaml("d.yaml", definitions(echo_hook, echo_smtp))
    env = dict(SECRETS)
    outputs = [cli("contacts", "import", str(tmp_path / "c.csv")), cli("apply", str(path)),
               cli("config", "set", "notify_channel", "hook"),
               cli("config", "set", "notify_to", "ops@example.org")]
    for name in ("to-hook", "to-mail"):
        outputs += [cli("submit", "campaign", name), cli("--as", "other", "approve", "campaign",
                                                         name), cli("start", "campaign", name)]
    assert all(o.exit_code == 0 for o in outputs), outputs
    pg = is_pg(state)
    if not pg:
        keep_wal = sqlite3.connect(state)  # an open reader keeps the -wal file beside the state
        keep_wal.execute("SELECT count(*) FROM objects").fetchone()
    outputs += [cli("tick", env=env), cli("tick", "-o", "json", "--now",
                                          "2027-03-01T09:02:00Z", env=env)]
    for args in (("channel", "test", "hook", "--to", "x@example.org"),
                 ("channel", "test", "mail", "--to", "x@example.org"),
                 ("-o", "json", "channel", "test", "hook", "--to", "x@example.org"),
                 ("notifications",), ("-o", "json", "notifications"), ("log",),
                 ("-o", "json", "log"), ("describe", "channel", "hook"),
                 ("-o", "json", "describe", "channel", "hook"), ("get", "runs", "-o", "json"),
                 ("describe", "run", "1"), ("-o", "json", "describe", "run", "1"),
                 ("-o", "json", "history", "channel", "hook", "--version", "1"),
                 ("apply", "--dry-run", str(path))):
        outputs.append(cli(*args, env=env))
    # On PostgreSQL `backup` refuses (pg_dump); `state copy` writes the same kind of file.
    outputs.append(cli("state", "copy", str(state), str(tmp_path / "copy.db")) if pg
                   else cli("backup", str(tmp_path / "copy.db")))

    # The receivers did echo the secrets: what campctl kept is the masked reason.
    errors = [r["last_error"] for r in rows("SELECT last_error FROM queue_items ORDER BY id")]
    assert all(e and "***" in e for e in errors), errors
    assert any(e.startswith("HTTP 400") for e in errors), errors
    assert any("535" in e for e in errors), errors
    notes = rows("SELECT delivery_error FROM notifications")
    assert notes and all("***" in (n["delivery_error"] or "") for n in notes), notes
    refused = [o for o in outputs if "test message to" in o.stderr]
    assert len(refused) == 3 and all("***" in o.stderr for o in refused), refused
    shown = outputs[-8].stdout  # describe channel hook: references shown, literals masked
    assert "${HOOK_PASS}" in shown and "${HOOK_TOKEN}" in shown and "sig=***" in shown

    for result in outputs:
        for secret in ALL_FORMS:
            assert secret not in result.stdout + result.stderr, (secret, result)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert pg or any(p.name.endswith("-wal") for p in files)
    assert any(p.name == "copy.db" for p in files)
    for file in files:
        data = file.read_bytes()
        for secret in (TOKEN, KEY, "qk%2FZ%2B91xx%26y", PASS, SMTP_PASS):
            assert secret.encode() not in data, (secret, file)
    if not pg:
        keep_wal.close()
    for copy in (state, tmp_path / "copy.db"):
        dump = "\n".join(dump_lines(copy))
        for secret in (TOKEN, KEY, PASS, SMTP_PASS):
            assert secret not in dump
        # The literal query value is part of the definition itself, nowhere else.
        assert tables_holding(copy, LITERAL_SIG) <= {"objects", "object_versions"}


def test_redactor_masks_encodings_and_never_leaves_half_a_secret():
    mask = Redactor(["abcd-secret"])
    assert mask("x abcd-secret y") == "x *** y"
    assert mask('{"a": "YWJjZC1zZWNyZXQ="}') == '{"a": "***"}'  # base64 echo
    assert mask("short ab") == "short ab"
    assert Redactor(["ok"])("ok fine") == "ok fine"  # too short to be a secret
    assert mask.clip("Q" * 10 + " abcd-sec", 200, cut_tail=True) == "Q" * 10 + " ***"
    assert mask.clip("abcd-secret" * 3, 5) == "*****"[:5]


def test_url_credentials_are_masked_for_display():
    assert mask_url("https://u:pw@h.example/x?a=1&b=${B}&c=") == \
        "https://u:***@h.example/x?a=***&b=${B}&c="
    spec = display_spec({"url": "https://h/x", "password": "plain",
                         "headers": {"Authorization": "Bearer lit", "X-Api-Key": "${K}",
                                     "Accept": "json"}})
    assert spec["password"] == "***"
    assert spec["headers"] == {"Authorization": "***", "X-Api-Key": "${K}", "Accept": "json"}


def test_redactor_for_a_channel_covers_env_values_and_url_parts():
    spec = {"type": "webhook", "url": "https://user:${P}@h/x?k=${K}&lit=zzzz9",
            "headers": {"X": "${T}"}}
    mask = redactor_for(spec, {"P": "pppp1", "K": "kkkk2", "T": "tttt3", "OTHER": "oooo4"})
    assert mask("pppp1 kkkk2 tttt3 zzzz9 oooo4") == "*** *** *** *** oooo4"


def test_a_url_from_the_environment_masks_its_path_token():
    mask = redactor_for({"type": "webhook", "url": "${CHAT_URL}"},
                        {"CHAT_URL": "https://chat.example/services/T01/B02/xoxTOKEN99"})
    assert mask('404 no route for "/services/T01/B02/xoxTOKEN99"') == '404 no route for "***"'
    assert mask("token xoxTOKEN99 revoked") == "token *** revoked"
    # A path written literally is no secret: the channel's name stays readable.
    plain = redactor_for({"url": "https://h.example/hook?k=${K}"}, {"K": "kkkk1"})
    assert plain("channel hook: /hook?k=kkkk1") == "channel hook: /hook?k=***"
