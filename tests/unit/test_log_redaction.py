"""No token reaches a log line: discord.py's DEBUG shapes, OAuth shapes, the config's own secrets, tracebacks."""

from __future__ import annotations

import logging

import pytest

from bot.__main__ import keep_secrets_out_of_logs
from bot.config import load_config
from bot.discord_io.log_redaction import REDACTED, SecretRedactor, install_log_redaction, secrets_of

INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5:Zm9vYmFyYmF6cXV4cXV1eA"


@pytest.fixture
def redactor() -> SecretRedactor:
    return SecretRedactor()


@pytest.mark.parametrize(
    "line",
    [
        # discord.gateway: 'For Shard ID %s: WebSocket Event: %s' with the INTERACTION_CREATE payload
        f"WebSocket Event: {{'t': 'INTERACTION_CREATE', 'd': {{'id': '1', 'token': '{INTERACTION_TOKEN}'}}}}",
        # discord.webhook / discord.http: the callback and followup URLs, token URL-quoted
        "POST https://discord.com/api/v10/interactions/123/aW50ZXJhY3Rpb246MTIz%3AZm9vYmFy/callback",
        "PATCH https://discord.com/api/v10/webhooks/900/aW50ZXJhY3Rpb246MTIz:Zm9vYmFy/messages/@original",
        # OAuth: a callback URL, a token request body, a token response
        "GET /patreon/callback?code=Sx1q0cJb8fGQ2pYy&state=abc.def",
        "grant_type=authorization_code&code=Sx1q0cJb8fGQ2pYy&client_secret=hunter2hunter2",
        '{"access_token": "YWNjZXNzLXRva2Vu", "refresh_token":"cmVmcmVzaC10b2tlbg", "expires_in": 2678400}',
        # headers
        "headers={'Authorization': 'Bot MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs'}",
        "Authorization: Bearer c2VjcmV0LWJlYXJlci10b2tlbg",
    ],
)
def test_token_shapes_are_redacted(redactor: SecretRedactor, line: str) -> None:
    clean = redactor.redact(line)
    assert REDACTED in clean
    for secret in (INTERACTION_TOKEN, "Zm9vYmFy", "Sx1q0cJb8fGQ2pYy", "hunter2hunter2", "YWNjZXNzLXRva2Vu",
                   "cmVmcmVzaC10b2tlbg", "ZnCjm1XVW7vRze4b7Cq4se7kKWs", "c2VjcmV0LWJlYXJlci10b2tlbg"):
        assert secret not in clean


def test_a_discord_token_is_redacted_wherever_it_appears(redactor: SecretRedactor) -> None:
    clean = redactor.redact("connecting with MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs now")
    assert clean == f"connecting with {REDACTED} now"


def test_ordinary_lines_and_numeric_codes_stay_readable(redactor: SecretRedactor) -> None:
    for line in (
        "{'code': 50013, 'message': 'Missing Permissions'}",
        "Bot is ready as FakeBot",
        "refresh (cron): 4 member(s) in 1 page(s)",
        "GET /guilds/710000000000000001/members/750000000000000001 has returned 200",
    ):
        assert redactor.redact(line) == line


def test_remembered_secrets_are_hidden_raw_and_url_quoted(redactor: SecretRedactor) -> None:
    redactor.remember(["webhook secret/with:odd=chars", "", "abc"])
    line = "sent webhook secret/with:odd=chars and webhook%20secret%2Fwith%3Aodd%3Dchars; abc stays"
    assert redactor.redact(line) == f"sent {REDACTED} and {REDACTED}; abc stays"


def test_every_secret_setting_of_the_config_is_known() -> None:
    config = load_config(
        {
            "DISCORD_TOKEN": "discord-token-value",
            "PATREON_CLIENT_ID": "client-id",
            "PATREON_CLIENT_SECRET": "client-secret-value",
            "PATREON_REDIRECT_URI": "https://example.org/patreon/callback",
            "PATREON_CREATOR_ACCESS_TOKEN": "creator-access-value",
            "PATREON_CREATOR_REFRESH_TOKEN": "creator-refresh-value",
            "PATREON_WEBHOOK_SECRET": "webhook-secret-value",
        },
        env_file=None,
    )
    assert set(secrets_of(config)) == {
        "discord-token-value",
        "client-secret-value",
        "creator-access-value",
        "creator-refresh-value",
        "webhook-secret-value",
    }
    assert "client-id" not in secrets_of(config)


def test_the_logging_set_up_redacts_every_logger_level_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    keep_secrets_out_of_logs(["the-configured-webhook-secret"])
    caplog.set_level(logging.DEBUG)
    logging.getLogger("discord.gateway").debug("For Shard ID %s: WebSocket Event: %s", None, {"token": "dG9rZW4"})
    logging.getLogger("discord.http").debug("POST %s has returned %s", "/webhooks/1/dG9rZW4x/messages", 200)
    try:
        raise RuntimeError("signature check with the-configured-webhook-secret failed")
    except RuntimeError:
        logging.getLogger("bot.web").exception("unexpected")
    text = caplog.text + "".join(record.getMessage() for record in caplog.records)
    assert "dG9rZW4" not in text and "the-configured-webhook-secret" not in text
    assert text.count(REDACTED) >= 4
    assert "RuntimeError" in caplog.text, "the traceback is still there, only the secret is gone"


def test_a_record_with_nothing_to_hide_keeps_its_arguments(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # twice changes nothing
    caplog.set_level(logging.INFO)
    logging.getLogger("bot.sync").info("linked discord=%s patreon=%s", 7, "p-7")
    (record,) = caplog.records
    assert record.args == (7, "p-7") and record.getMessage() == "linked discord=7 patreon=p-7"
