"""The Link-account panel: `/patreon-admin panel`, its persistent buttons, and the once-per-member invitation.

The buttons carry fixed custom_ids (bot/accounts/panel.py) and the view is registered at every start-up, so a
panel posted months ago still works. A click acts only for the person who clicked, in the server they clicked in:
nothing is read from the message, which can be old, or forwarded, or sit in another server.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.accounts.panel import (
    LINK_ID,
    MAX_TEXT,
    MAX_TITLE,
    STATUS_ID,
    UNLINK_ANSWER_TEMPLATE,
    UNLINK_ID,
    invitation_content,
    panel_content,
    poster_refusal,
    unlink_answer_id,
)
from bot.accounts.patron_replies import NOT_LINKED, unlink_reply
from bot.discord_io.client import PatronBot
from bot.guild_admin.service import AdminError
from bot.store.panels import PanelRecord
from cogs.patron import answer_link, status_text

log = logging.getLogger(__name__)

SOMETHING_WRONG = "Something went wrong on our side; nothing was changed. Please try again."


class PanelView(discord.ui.View):
    """The panel's three buttons (the invitation carries only Link account). Persistent: no timeout, fixed ids."""

    def __init__(self, bot: PatronBot, *, link_only: bool = False) -> None:
        super().__init__(timeout=None)
        self.bot = bot
        if link_only:
            self.remove_item(self.status)
            self.remove_item(self.unlink)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.guild_id is None:  # panels live in server channels; a click always names its server
            await interaction.response.send_message("This only works in a server.", ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Link account", style=discord.ButtonStyle.primary, custom_id=LINK_ID)
    async def link(self, interaction: discord.Interaction, _: discord.ui.Button[PanelView]) -> None:
        log.info("panel: link clicked by user=%s in guild=%s", interaction.user.id, interaction.guild_id)
        await answer_link(self.bot, interaction)

    @discord.ui.button(label="Check my roles", style=discord.ButtonStyle.secondary, custom_id=STATUS_ID)
    async def status(self, interaction: discord.Interaction, _: discord.ui.Button[PanelView]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(await status_text(self.bot, interaction), ephemeral=True)

    @discord.ui.button(label="Unlink", style=discord.ButtonStyle.danger, custom_id=UNLINK_ID)
    async def unlink(self, interaction: discord.Interaction, _: discord.ui.Button[PanelView]) -> None:
        link = await self.bot.services.store.get_link_by_discord(interaction.user.id)
        if link is None:
            await interaction.response.send_message(NOT_LINKED, ephemeral=True)
            return
        confirm = discord.ui.View(timeout=None)
        confirm.add_item(UnlinkAnswer("yes", interaction.user.id))
        confirm.add_item(UnlinkAnswer("no", interaction.user.id))
        await interaction.response.send_message(
            f"Unlink your Patreon account (user `{link.patreon_user_id}`)? The roles this bot gave you go, "
            "everywhere the bot manages roles; roles you got any other way stay.",
            view=confirm,
            ephemeral=True,
        )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        log.error("panel button %s failed", getattr(item, "custom_id", "?"), exc_info=error)
        await _say(interaction, SOMETHING_WRONG)


class UnlinkAnswer(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=UNLINK_ANSWER_TEMPLATE):
    """Unlink's confirm and cancel, for one user (their id is in the custom_id, so it survives a restart)."""

    def __init__(self, answer: str, user_id: int) -> None:
        confirm = answer == "yes"
        super().__init__(
            discord.ui.Button(
                label="Yes, unlink" if confirm else "Cancel",
                style=discord.ButtonStyle.danger if confirm else discord.ButtonStyle.secondary,
                custom_id=unlink_answer_id(answer, user_id),
            )
        )
        self.answer = answer
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> UnlinkAnswer:
        return cls(match["answer"], int(match["user_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:  # Discord shows the message only to them; don't rely on it alone
            log.warning("panel: user=%s pressed the unlink answer of user=%s", interaction.user.id, self.user_id)
            await interaction.response.send_message("This button isn't for you; nothing was changed.", ephemeral=True)
            return
        if self.answer != "yes":
            await interaction.response.edit_message(content="Nothing was changed; you're still linked.", view=None)
            return
        bot = interaction.client
        assert isinstance(bot, PatronBot)
        await interaction.response.defer()  # a deferred update: the confirm message itself becomes the answer
        try:
            text = await unlink_reply(bot.services.linking, self.user_id)
        except Exception:
            log.exception("panel: unlink failed for user=%s", self.user_id)
            text = SOMETHING_WRONG
        log.info("panel: user=%s confirmed unlink in guild=%s", self.user_id, interaction.guild_id)
        await interaction.edit_original_response(content=text, view=None)


def missing_rights(channel: discord.TextChannel) -> list[str]:
    """What the bot lacks to post the panel in this channel (overwrites included), by Discord's names."""
    perms = channel.permissions_for(channel.guild.me)
    needed = {"View Channel": perms.view_channel, "Send Messages": perms.send_messages}
    return [name for name, held in needed.items() if not held]


def assert_may_post(admin: discord.Member | None, channel: discord.TextChannel, *, old: bool = False) -> None:
    """The admin's own rights in the channel (bot/accounts/panel.py `poster_refusal`); no admin: code, not a
    command, asks."""
    if admin is None:
        return
    rights = channel.permissions_for(admin)
    refusal = poster_refusal(
        channel.mention,
        owner=channel.guild.owner_id == admin.id,
        can_view=rights.view_channel,
        can_send=rights.send_messages,
        old=old,
    )
    if refusal is not None:
        log.info("guild=%s: panel refused, user=%s can't post in channel=%s", channel.guild.id, admin.id, channel.id)
        raise AdminError(refusal)


class PanelPublisher:
    """Posts, edits and re-renders each server's one panel; a lock per server keeps two runs from posting twice."""

    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self._locks: dict[int, asyncio.Lock] = {}

    async def _content(self, guild_id: int, title: str | None, body: str | None) -> str:
        services = self.bot.services
        tiers = await services.admin.campaign_tiers(refresh=False, guild_id=guild_id)
        currency = (await services.store.get_settings(guild_id)).currency
        return panel_content(title, body, tiers, await services.store.get_tier_roles(guild_id), currency)

    async def publish(
        self, channel: discord.TextChannel, title: str | None, body: str | None, admin: discord.Member | None = None
    ) -> str:
        """Post the panel, or edit the one already posted in this channel; raises AdminError (nothing posted).
        `admin`: who asks; they must be able to post in the channel (and in the old panel's, when it moves)."""
        guild_id = channel.guild.id
        refusal = await self.bot.services.admin.participation_refusal(guild_id)
        if refusal is not None:
            raise AdminError(refusal)
        missing = missing_rights(channel)
        if missing:
            log.info("guild=%s: panel refused, the bot lacks %s in channel=%s", guild_id, missing, channel.id)
            raise AdminError(
                f"I can't post in {channel.mention}: I need {' and '.join(missing)} there. Give the bot's role "
                "those permissions in that channel and run this again; nothing was posted."
            )
        assert_may_post(admin, channel)
        store = self.bot.services.store
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            old = await store.get_panel(guild_id)
            old_channel = self.bot.get_channel(old.channel_id) if old is not None else None
            if isinstance(old_channel, discord.TextChannel) and old_channel.id != channel.id:
                assert_may_post(admin, old_channel, old=True)  # moving it deletes the old one
            if old is not None:  # options left out keep what the admin chose before
                title = title if title is not None else old.title
                body = body if body is not None else old.body
            content = await self._content(guild_id, title, body)
            if old is not None and old.channel_id == channel.id:
                try:
                    await channel.get_partial_message(old.message_id).edit(content=content, view=PanelView(self.bot))
                except discord.NotFound:
                    log.info("guild=%s: the panel message %s was deleted; posting a new one", guild_id, old.message_id)
                else:
                    await store.save_panel(PanelRecord(guild_id, channel.id, old.message_id, title, body))
                    log.info("guild=%s: panel %s updated in channel=%s", guild_id, old.message_id, channel.id)
                    return f"✅ Updated the panel in {channel.mention} (the same message)."
            try:
                message = await channel.send(content, view=PanelView(self.bot))
            except discord.Forbidden:
                raise AdminError(
                    f"Discord didn't let me post in {channel.mention}; check the bot's permissions there. "
                    "Nothing was posted."
                ) from None
            await store.save_panel(PanelRecord(guild_id, channel.id, message.id, title, body))
            log.info("guild=%s: panel %s posted in channel=%s", guild_id, message.id, channel.id)
            moved = ""
            if old is not None and old.channel_id != channel.id:
                moved = " " + await self._remove(old)
            return f"✅ Posted the panel in {channel.mention}.{moved} Run this again to update it."

    async def _remove(self, old: PanelRecord) -> str:
        """One panel per server: the old one goes when the panel moves to another channel."""
        channel = self.bot.get_channel(old.channel_id)
        if not isinstance(channel, discord.TextChannel):
            return "The old panel's channel is gone."
        try:
            await channel.get_partial_message(old.message_id).delete()
        except discord.NotFound:
            return "The old panel was already deleted."
        except discord.HTTPException as error:
            log.warning("guild=%s: could not delete the old panel %s: %s", old.guild_id, old.message_id, error)
            return f"I couldn't delete the old panel in {channel.mention}; delete it by hand."
        return f"The old panel in {channel.mention} was deleted."

    async def refresh(self, guild_id: int) -> None:
        """Re-render the tier list after the mapping changed; a deleted panel is forgotten."""
        store = self.bot.services.store
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            panel = await store.get_panel(guild_id)
            if panel is None:
                return
            channel = self.bot.get_channel(panel.channel_id)
            if not isinstance(channel, discord.TextChannel):
                log.warning("guild=%s: the panel's channel %s is gone; not refreshed", guild_id, panel.channel_id)
                return
            content = await self._content(guild_id, panel.title, panel.body)
            try:
                await channel.get_partial_message(panel.message_id).edit(content=content, view=PanelView(self.bot))
            except discord.NotFound:
                await store.forget_panel(guild_id, panel.message_id)
                log.info("guild=%s: the panel %s was deleted; forgotten", guild_id, panel.message_id)
            except discord.HTTPException as error:
                log.warning("guild=%s: could not refresh the panel %s: %s", guild_id, panel.message_id, error)
            else:
                log.info("guild=%s: panel %s refreshed after a mapping change", guild_id, panel.message_id)


def panel_command(publisher: PanelPublisher) -> app_commands.Command[Any, ..., None]:
    """`/patreon-admin panel`, attached to the admin group by `setup` (it runs the group's Manage Roles check)."""

    @app_commands.command(name="panel", description="Post (or update) the Link account panel in a channel")
    @app_commands.describe(
        channel="Where patrons should find it, e.g. #get-roles",
        title="The panel's heading (default: Get your Patreon roles)",
        text="A line of your own above the tier list",
    )
    async def panel(
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        title: app_commands.Range[str, 1, MAX_TITLE] | None = None,
        text: app_commands.Range[str, 1, MAX_TEXT] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.guild_id != channel.guild.id:  # Discord resolves channel options in the invoking server
            raise AdminError("Pick a channel of this server.")
        admin = interaction.user if isinstance(interaction.user, discord.Member) else None
        answer = await publisher.publish(channel, title, text, admin)
        await interaction.followup.send(answer, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    return panel


async def invite_new_member(bot: PatronBot, member: discord.Member) -> None:
    """`welcome_link`: invite a member who just joined to link, once ever per server, in the welcome channel."""
    services = bot.services
    guild_id = member.guild.id
    settings = await services.store.get_settings(guild_id)
    if not settings.invite_new_members or member.bot:
        return
    if await services.reconcile.participation_refusal(guild_id) is not None:
        return
    channel = member.guild.get_channel(settings.welcome_channel_id) if settings.welcome_channel_id else None
    if not isinstance(channel, discord.TextChannel):
        log.warning("guild=%s: welcome_link is on but no welcome channel is set; nobody invited", guild_id)
        return
    if missing_rights(channel):
        log.warning("guild=%s: can't invite user=%s, the bot lacks %s", guild_id, member.id, missing_rights(channel))
        return
    if not await services.store.claim_link_invitation(guild_id, member.id):
        log.info("guild=%s: user=%s was invited to link before; not again", guild_id, member.id)
        return
    try:
        await channel.send(
            invitation_content(member.id),
            view=PanelView(bot, link_only=True),
            allowed_mentions=discord.AllowedMentions(users=[member]),
        )
    except discord.HTTPException as error:  # claimed already: at most once, even when this fails
        log.warning("guild=%s: inviting user=%s failed: %s", guild_id, member.id, error)
    else:
        log.info("guild=%s: invited user=%s to link in channel=%s", guild_id, member.id, channel.id)


class Panel(commands.Cog):
    def __init__(self, bot: PatronBot, publisher: PanelPublisher) -> None:
        self.bot = bot
        self.publisher = publisher

    @commands.Cog.listener()
    async def on_patreon_mapping_changed(self, guild_id: int) -> None:
        """Dispatched by `map`/`unmap` (cogs/admin.py): the panel's tier list follows the mapping."""
        await self.publisher.refresh(guild_id)


async def _say(interaction: discord.Interaction, text: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: PatronBot) -> None:
    """Runs inside setup_hook (bot/discord_io/client.py), after cogs.admin: registering the persistent view and
    the unlink answers here, at every start-up, is what keeps old panels working."""
    admin = bot.get_cog("Admin")
    group = admin.app_command if isinstance(admin, commands.GroupCog) else None
    if admin is None or group is None:
        raise RuntimeError("cogs.admin must be loaded before cogs.panel")
    publisher = PanelPublisher(bot)
    command = panel_command(publisher)
    command.add_check(admin.interaction_check)  # the same Manage Roles check as every /patreon-admin command
    group.add_command(command)
    bot.add_view(PanelView(bot))
    bot.add_dynamic_items(UnlinkAnswer)
    await bot.add_cog(Panel(bot, publisher))
