"""A world's view of the bot's role calls to the fake Discord: the calls it made, failures and gateway lag to inject.

A mixin of `FakeWorld` (fakes/world.py), split from it so the world reads as set-up, people and the sync; what
the rate-limit tests and the fairness bench count against a server's bucket lives here with the rest.
"""

from __future__ import annotations

from fakes.discord import FakeDiscord, RecordedCall
from fakes.seed import SEED


class RoleCallWatch:
    """The fake Discord's record of role calls, and the faults a test puts in their way."""

    discord: FakeDiscord

    def role_calls(self, user_id: int | None = None) -> list[RecordedCall]:
        """Every role-change call to Discord for this member (or anyone): the PUT/DELETE of one member role the
        gateway sends, and any PATCH of the whole role list, so a regression to whole-list writes is counted too."""
        member = str(user_id) if user_id is not None else r"\d+"
        whole = self.discord.calls_matching("PATCH", rf"/guilds/{SEED.guild_id}/members/{member}$")
        single = [
            call
            for method in ("PUT", "DELETE")
            for call in self.discord.calls_matching(method, rf"/guilds/{SEED.guild_id}/members/{member}/roles/\d+$")
        ]
        return sorted(whole + single, key=lambda call: call.at)

    def accepted_role_calls(self, guild_id: int) -> list[RecordedCall]:
        """The member-role PUTs and DELETEs Discord accepted in one server (429s left out), oldest first: what the
        rate-limit tests and the fairness bench count against the server's bucket."""
        calls = [
            call
            for method in ("PUT", "DELETE")
            for call in self.discord.calls_matching(method, rf"^/guilds/{guild_id}/members/\d+/roles/\d+$")
            if call.status != 429
        ]
        return sorted(calls, key=lambda call: call.at)

    def fail_role_changes(
        self, user_id: int, status: int = 503, count: int = 1, *, code: int = 0, message: str | None = None
    ) -> None:
        """The next `count` attempts to give this member a role fail, whichever form the gateway uses."""
        for method, path in (("PATCH", rf"/members/{user_id}$"), ("PUT", rf"/members/{user_id}/roles/\d+$")):
            self.discord.fail_next(method, path, status=status, count=count, code=code, message=message)

    def hold_member_updates(self, user_id: int) -> None:
        """Discord's gateway lags: this member's GUILD_MEMBER_UPDATE events wait, so the bot's cache keeps showing
        their old roles after its own role calls succeed, until `release_member_updates`."""
        self.discord.hold_member_updates(SEED.guild_id, user_id)

    def release_member_updates(self) -> int:
        """Send the held member updates in order; returns how many there were."""
        return self.discord.release_member_updates()


def role_call_member(call: RecordedCall) -> int:
    """The member a `/guilds/{g}/members/{u}/roles/{r}` call was for."""
    return int(call.path.split("/")[4])
