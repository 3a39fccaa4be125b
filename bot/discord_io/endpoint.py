"""Point discord.py at another Discord (the loopback fake) through its two documented class attributes."""

from __future__ import annotations

import discord.gateway
import discord.http
import yarl


def point_discord_at(base_url: str) -> None:
    """REST goes to `{base_url}/api/v10`, the gateway to `ws(s)://host/gateway`.

    Must run before login; the real Discord needs no call (discord.py's defaults are right).
    """
    base = yarl.URL(base_url)
    discord.http.Route.BASE = str(base / "api" / "v10")
    gateway_scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(gateway_scheme).with_path("/gateway")
