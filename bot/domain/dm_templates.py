"""The three opt-in DMs (welcome, payment declined, roles removed) as short templates: pure text, no I/O.

What a DM may carry is fixed here, so nothing else can slip in: the server's name, this member's own roles there,
a date, and the policy's one-line reason about this member. Never a Patreon name, an e-mail address or anyone
else's data. Every value that someone other than the bot chose (the server's name, role names, the reason, which
quotes tier titles) is escaped: Discord markdown can't restyle the message and `@everyone`, `@here`, `<@id>`,
`<@&id>` and `<#id>` can't mention anyone (the sender also passes `allowed_mentions` none, so a ping is stopped
twice). A DM stays under Discord's 2,000 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

#: Discord's limit for a message's content.
MAX_DM = 2000
#: Room for one inserted value, so three long names can't push the fixed text out.
MAX_VALUE = 300

#: Markdown that works mid-line (values are put on one line, so `#`, `>` and `-` can't start one): emphasis, code,
#: spoilers and masked links.
_MARKDOWN = re.compile(r"([\\*_~`|\[\]])")
_MENTION = re.compile(r"<(@[!&]?|#|/)")
_ZERO_WIDTH = "\u200b"


class DmKind(StrEnum):
    WELCOME = "welcome"
    DECLINED = "declined"
    REMOVED = "removed"


@dataclass(frozen=True)
class DmValues:
    """What a template may show."""

    server: str
    #: This member's own roles in that server (welcome: the ones they got; removed: the ones taken).
    roles: tuple[str, ...] = ()
    #: Declined: when the grace ends (YYYY-MM-DD, UTC).
    until: str = ""
    #: Removed: the policy's reason, about this member only.
    reason: str = ""


def plain(text: str) -> str:
    """`text` as inert Discord text: markdown escaped, mentions broken by a zero-width space, cut to MAX_VALUE."""
    text = " ".join(text.split())[:MAX_VALUE]
    text = _MARKDOWN.sub(r"\\\1", text)
    text = _MENTION.sub(lambda match: "<" + _ZERO_WIDTH + match.group(1), text)
    return text.replace("@", "@" + _ZERO_WIDTH)


def render(kind: DmKind, values: DmValues) -> str:
    """The DM of `kind`, ready to send (the preview shows exactly this)."""
    server = f"**{plain(values.server)}**"
    roles = ", ".join(plain(role) for role in values.roles)
    if kind is DmKind.WELCOME:
        got = f" You now have: {roles}." if roles else ""
        text = (
            f"👋 Thanks for linking your Patreon in {server}!{got} Your roles there follow your pledge from now on; "
            "`/patreon status` in that server shows why you have each one."
        )
    elif kind is DmKind.DECLINED:
        until = f"until **{plain(values.until)}** (UTC)" if values.until else "for now"
        text = (
            f"⚠️ Patreon says your last payment was declined. Your Patreon roles in {server} are kept {until} "
            "while Patreon retries. Updating your payment method on Patreon keeps them."
        )
    else:
        taken = f" ({roles})" if roles else ""
        why = plain(values.reason) or "Patreon no longer shows a pledge that earns them"
        text = (
            f"Your Patreon roles in {server} were removed{taken} because: {why}. They come back as soon as Patreon "
            "shows a pledge that earns them; `/patreon status` in that server shows the details."
        )
    footer = "\n-# You get this because the server's admins turned on these messages."
    return (text + footer)[:MAX_DM]


#: What `/patreon-admin dm-preview` fills in where a real DM has the member's own values.
SAMPLE_ROLES = ("Gold Patron",)
SAMPLE_UNTIL = "2026-01-08"
SAMPLE_REASON = "Former patron; paid period ended on 2026-01-01"
