"""Discord's role hierarchy applied to the admin who asks, so the bot never hands out a role they couldn't.

Discord lets a member with Manage Roles give only the roles strictly below their own highest role; the server
owner is exempt, and Administrator does *not* lift the limit (Discord's developer documentation, Topics →
Permissions → Permission Hierarchy). The same rule holds for taking a role away. An admin command that makes the bot
give a role (`map`, the role options of `settings`, `link-user`) or take one back or stop managing it (`unmap`,
`unlink-user`, clearing or replacing a role setting, `disconnect take_back_roles:True`, `uncomp`), or that decides
whether the bot acts at all (`settings enabled:`, `disconnect`), would otherwise let a moderator reach above their
rank through the bot. The cog reads the rank from the interaction's member; this
module only compares ids, so it stays pure.

A role the server no longer has (deleted in Discord while still mapped, set or remembered as given) is left out
(`gone`): nobody can be given it or hold it (Discord refuses a deleted role), so refusing on it protects nothing, and
it would lock every admin but the owner out of the on/off switch, `disconnect`, `connect`, the `unmap` that clears
it, `link-user` (the roles the policy hands out, and those a replaced link by hand gave), `unlink-user` and `uncomp`
(review 6, R6-3). Only Discord's own answer makes a role gone (RoleGateway.deleted_roles: a role missing from the
cache is confirmed by a fresh read of the server's roles), never a cache miss alone, so a role that exists can't
slip past.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class InvokerRank:
    """The person running an admin command, as Discord's hierarchy sees them."""

    user_id: int
    owner: bool
    #: Every role of the server strictly below the invoker's highest role (what they could give by hand).
    roles_below: frozenset[int]
    #: Shown in the refusal.
    top_role_name: str = "@everyone"
    #: Whether they hold Kick Members (the kick-on-lapse settings need it, as kicking by hand would).
    kick_members: bool = False
    #: Whether they hold Manage Server (where the log and the weekly patrons report go needs it).
    manage_guild: bool = False

    def may_give(self, role_id: int) -> bool:
        return self.owner or role_id in self.roles_below

    def refusal(
        self,
        role_ids: Iterable[int],
        role_name: Callable[[int], str],
        action: str = "make the bot give",
        *,
        removing: bool = False,
        gone: Collection[int] = (),
    ) -> str | None:
        """The one-sentence refusal ("You can't {action} @Role: ...") when any of `role_ids` is at or above the
        invoker's highest role, else None. `removing`: the command takes roles away (or stops managing them);
        `gone`: roles Discord says the server no longer has, which count for nobody."""
        above = sorted(role_id for role_id in set(role_ids) - set(gone) if not self.may_give(role_id))
        if not above:
            return None
        names = ", ".join(f"@{role_name(role_id)}" for role_id in above)
        verb = "take away" if removing else "hand out"
        return (
            f"You can't {action} {names}: Discord only lets you {verb} roles below your highest role "
            f"({self.top_role_name})."
        )


#: No known invoker (a call from code rather than a command): may give nothing.
NOBODY = InvokerRank(user_id=0, owner=False, roles_below=frozenset(), top_role_name="unknown")
