"""The Discord half of the opt-in DMs: open the member's DM channel and send one message, and say how it went.

Why here: only bot/discord_io imports discord.py. `POST /users/@me/channels` opens (or returns) the DM channel,
then `POST /channels/{id}/messages` sends with the outbox row's `nonce` (discord.py adds `enforce_nonce`, so Discord
returns the existing message for a nonce it saw minutes ago instead of making a second). Discord answers 403 with
code 50007 ("Cannot send messages to this user") to a member who doesn't take DMs from server members or shares no
server with the bot (Discord's developer documentation, Topics → Opcodes and Status Codes, JSON error codes).
`find_sent` reads the channel back (`GET /channels/{id}/messages?after=`), which is how a send cut short too long
ago for the nonce is checked: Discord doesn't show a message's nonce when it is read back, so the text is matched.
"""

from __future__ import annotations

from datetime import datetime

import aiohttp
import discord

from bot.sync.patron_dms import DmOutcome

CANNOT_SEND_TO_USER = 50007


class DiscordDmSender:
    def __init__(self, client: discord.Client) -> None:
        self.client = client

    def guild_name(self, guild_id: int) -> str:
        guild = self.client.get_guild(guild_id)
        return guild.name if guild is not None else "a Discord server"

    async def send(self, user_id: int, text: str, nonce: str) -> tuple[DmOutcome, str]:
        """One DM, mentioning no one whatever the text holds."""
        try:
            channel = await self.client.create_dm(discord.Object(user_id))
            await channel.send(text, nonce=nonce, allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden as error:
            if error.code == CANNOT_SEND_TO_USER:
                return DmOutcome.BLOCKED, f"{error.code} {error.text}"
            return DmOutcome.FAILED, f"403 {error.code} {error.text}"
        except discord.HTTPException as error:
            retry = error.status >= 500 or error.status == 429
            return (DmOutcome.RETRY if retry else DmOutcome.FAILED), f"{error.status} {error.code} {error.text}"
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            return DmOutcome.RETRY, type(error).__name__
        return DmOutcome.SENT, ""

    async def find_sent(self, user_id: int, text: str, since: datetime) -> bool | None:
        """Whether the DM channel holds a message of ours with this text created after `since`; None when Discord
        couldn't be asked (then nothing is decided)."""
        me = self.client.user
        try:
            channel = await self.client.create_dm(discord.Object(user_id))
            async for message in channel.history(after=since, limit=100, oldest_first=True):
                if me is not None and message.author.id == me.id and message.content == text:
                    return True
        except discord.Forbidden:
            return False  # nothing of ours can be there to find
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError):
            return None
        return False
