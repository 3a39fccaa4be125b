"""Keeps tokens and secrets out of every log line, whatever logger, level or handler writes it.

discord.py logs at DEBUG every gateway event (INTERACTION_CREATE carries the interaction's token) and every
request URL (`/interactions/{id}/{token}/callback`, `/webhooks/{app}/{token}`); a token there lets anyone answer
as the bot for 15 minutes. OAuth codes ride in callback URLs, access and refresh tokens in token bodies.

Why a log-record factory rather than a filter on some handlers: a handler filter misses every handler added later
(a host's own, pytest's caplog), and a logger filter misses records propagated from child loggers. The factory
rewrites each record once, as it is made, before any filter, handler or formatter sees it. A record with nothing
to hide is left untouched.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"
#: Shorter known values are not worth hiding and would blank out ordinary words.
MIN_SECRET_LENGTH = 6

#: The token segment of Discord's interaction callback and webhook URLs (also URL-quoted).
_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)([^/?#\s'\"]+)")
#: `token=…`, `"access_token": "…"`, `'code': '…'`, `client_secret=…`: a key that names a secret, then its value.
#: An all-digit value is kept (Discord error codes, ids), so `'code': 50013` stays readable.
_KEY_VALUE = re.compile(
    r"""(?i)(\b(?:access_token|refresh_token|client_secret|token|code|secret|password)["']?\s*[:=]\s*["']?)"""
    r"""(?!\d+\b)([^\s"'&,;}\])]+)"""
)
#: `Authorization` values: `Bot …`, `Bearer …`, `Basic …` followed by something token-sized.
_AUTHORIZATION = re.compile(r"\b(Bot|Bearer|Basic)(\s+)[A-Za-z0-9._~+/=%-]{16,}")
#: The shape of a Discord bot token: base64 user id, timestamp, HMAC.
_DISCORD_TOKEN = re.compile(r"\b[MNO][A-Za-z\d_-]{23,27}\.[\w-]{6}\.[\w-]{27,}")


class SecretRedactor:
    """Replaces known secrets (the config's) and anything shaped like a token with `[redacted]`."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._known_pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def remember(self, secrets: Iterable[str]) -> None:
        """Hide these exact values from now on (raw and URL-quoted); short or empty ones are ignored."""
        with self._lock:
            fresh = {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH} - self._known
            if not fresh:
                return
            self._known |= fresh
            forms = {form for secret in self._known for form in (secret, quote(secret, safe=""))}
            alternatives = sorted(forms, key=len, reverse=True)
            self._known_pattern = re.compile("|".join(re.escape(form) for form in alternatives))

    def redact(self, text: str) -> str:
        known = self._known_pattern
        if known is not None:
            text = known.sub(REDACTED, text)
        text = _URL_TOKEN.sub(rf"\g<1>{REDACTED}", text)
        text = _KEY_VALUE.sub(rf"\g<1>{REDACTED}", text)
        text = _AUTHORIZATION.sub(rf"\g<1>\g<2>{REDACTED}", text)
        return _DISCORD_TOKEN.sub(REDACTED, text)

    def scrub(self, record: logging.LogRecord) -> None:
        """Rewrite the record's message (and traceback, stack) in place when it holds something to hide."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep what it said, safely, instead of raising into the caller
            message = f"{record.msg!s} {record.args!r}"
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            trace = logging.Formatter().formatException(record.exc_info)
            clean_trace = self.redact(trace)
            if clean_trace != trace:
                record.exc_text = clean_trace
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


#: The process's one redactor: the entry point teaches it the config's secrets.
REDACTOR = SecretRedactor()


def install_log_redaction(redactor: SecretRedactor = REDACTOR) -> None:
    """Make every log record pass through `redactor` as it is created; calling it again changes nothing."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redactor", None) is redactor:
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.scrub(record)
        return record

    factory: Callable[..., logging.LogRecord] = make_record
    factory.redactor = redactor  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def remember_secrets(secrets: Iterable[str], redactor: SecretRedactor = REDACTOR) -> None:
    redactor.remember(secrets)


def secrets_of(settings: object) -> list[str]:
    """The values of a dataclass's fields marked `metadata=SECRET` (the config's tokens and secrets)."""
    fields = getattr(settings, "__dataclass_fields__", {})
    return [
        value
        for name, item in fields.items()
        if item.metadata.get("secret") and isinstance(value := getattr(settings, name), str) and value
    ]
