"""The SMTP channel: one reused connection per batch, STARTTLS/login, deterministic Message-ID."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from campctl.channels.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    ChannelError,
    Message,
    NetworkChannel,
    Outcome,
    parse_timeout,
)
from campctl.definitions.models import DEFAULT_SMTP_TIMEOUT
from campctl.definitions.models import SmtpChannel as SmtpSettings

if TYPE_CHECKING:
    import smtplib


def message_id_header(message_id: str) -> str:
    return f"<{message_id}@campctl>"


def _clean(value: str) -> str:
    return " ".join(str(value).split())


class SmtpChannel(NetworkChannel):
    type = "smtp"
    batch_size = 50

    def __init__(self, name: str, spec: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        super().__init__(name, spec, environ)
        settings = SmtpSettings.from_spec(self.spec)
        if not settings.host:
            raise ChannelError(f"channel {name}: smtp needs a host")
        self.host_text = settings.host  # as written (a ${VAR} is resolved when connecting)
        self.starttls = settings.starttls
        port = settings.port
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ChannelError(f"channel {name}: port must be a number between 1 and 65535")
        self.port = port
        self.timeout = parse_timeout(settings.timeout, DEFAULT_SMTP_TIMEOUT)
        self.sender = settings.sender
        self._conn: smtplib.SMTP | None = None

    # --- connection ---------------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        host = self.secret("host")
        username = self.secret("username")
        password = self.secret("password")  # resolved now, kept only in this frame
        conn = smtplib.SMTP(host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if username:
                conn.login(str(username), "" if password is None else str(password))
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.quit()
            except Exception:
                _quietly_close(conn)

    # --- sending ------------------------------------------------------------------------------
    def build(self, message: Message) -> bytes:
        from email.header import Header
        from email.mime.text import MIMEText
        from email.utils import formataddr, formatdate, parseaddr

        # MIMEText (compat32) builds ~5x faster than EmailMessage with the default policy.
        mime = MIMEText(message.body, "plain", "utf-8")
        subject = _clean(message.subject)
        # compat32 takes a Header object for an encoded value; typeshed types the values as str.
        mime["Subject"] = (subject if subject.isascii()  # type: ignore[assignment]
                           else Header(subject, "utf-8"))
        name, address = parseaddr(_clean(self.sender))
        # Only the display name may be encoded; an encoded address is undeliverable.
        mime["From"] = formataddr((name, address), charset="utf-8") if address else _clean(
            self.sender)
        mime["To"] = _clean(message.to or "")
        mime["Message-ID"] = message_id_header(message.message_id)
        sent_at = message.record.get("sent_at")
        mime["Date"] = formatdate(_epoch(sent_at) if sent_at else 0, usegmt=True)
        return mime.as_bytes()

    def _deliver(self, messages: Iterable[Message]) -> Iterator[Outcome]:
        import smtplib
        from email.utils import parseaddr

        reconnects = 0
        down: str | None = None
        envelope_from = parseaddr(str(self.sender))[1] or str(self.sender)
        for message in messages:
            to = (message.to or "").strip()
            if not to or "@" not in to or any(c in to for c in "\r\n<>,"):
                yield Outcome(PERMANENT, "recipient has no usable email address")
                continue
            if down is not None:
                yield Outcome(TRANSIENT, down)
                continue
            if self._conn is None:
                try:
                    self._conn = self._connect()
                except ChannelError as exc:  # a missing ${VAR}: retried, so fixing env recovers
                    down = exc.reason
                    yield Outcome(TRANSIENT, down)
                    continue
                except smtplib.SMTPResponseException as exc:
                    down = f"SMTP {exc.smtp_code} at connect/login: {self._text(exc.smtp_error)}"
                    yield Outcome(TRANSIENT, down)
                    continue
                except (OSError, smtplib.SMTPException) as exc:
                    down = (f"cannot connect to {self.host_text}:{self.port}: "
                            f"{self._exc(exc)}")
                    yield Outcome(TRANSIENT, down)
                    continue
            try:
                refused = self._conn.sendmail(envelope_from, [to], self.build(message))
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (0, b""))
                yield _by_code(code, f"recipient refused: {code} {self._text(text)}")
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                yield _by_code(exc.smtp_code, f"SMTP {exc.smtp_code}: {self._text(exc.smtp_error)}")
            except (smtplib.SMTPServerDisconnected, OSError, smtplib.SMTPException) as exc:
                _quietly_close(self._conn)
                self._conn = None
                yield Outcome(TRANSIENT, f"connection lost: {self._exc(exc)}")
                reconnects += 1
                if reconnects > 1:
                    down = f"connection lost again: {self._exc(exc)}"
            else:
                if refused:
                    code, text = next(iter(refused.values()))
                    yield _by_code(code, f"recipient refused: {code} {self._text(text)}")
                else:
                    yield Outcome(SENT)


    def _text(self, value: Any) -> str:
        """A server's reply text, one line, with the channel's secrets masked before the cut."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return self.redact.clip(str(value), 300)

    def _exc(self, exc: BaseException) -> str:
        return self._text(str(exc) or type(exc).__name__)


def _by_code(code: int, reason: str) -> Outcome:
    return Outcome(PERMANENT if 500 <= int(code or 0) < 600 else TRANSIENT, reason)


def _epoch(text: str) -> float:
    from campctl.timeutil import from_db

    moment = from_db(text)
    return moment.timestamp() if moment else 0.0


def _quietly_close(conn) -> None:
    try:
        conn.close()
    except Exception:
        pass
