"""The small HTML pages a patron sees in their browser after Patreon sends them back."""

from __future__ import annotations

from html import escape

from bot.accounts.linking import LinkResult

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .ok{{color:#17803d}} .bad{{color:#b3261e}} li{{margin:.2rem 0}}</style></head>
<body><h1 class="{css}">{headline}</h1>{body}<p>You can close this tab and go back to Discord.</p></body></html>"""


def render_link_page(result: LinkResult) -> str:
    parts = [f"<p>{escape(result.detail)}</p>"]
    if result.ok:
        if result.discord_name:
            parts.insert(
                0,
                f"<p>Discord account: <strong>@{escape(result.discord_name)}</strong>. Not you? Someone shared "
                "their link: run <code>/patreon unlink</code> in Discord and tell the server's admins.</p>",
            )
        if result.patreon_name:
            parts.insert(0, f"<p>Patreon account: <strong>{escape(result.patreon_name)}</strong></p>")
        if result.tier_titles:
            parts.append(f"<p>Tier: <strong>{escape(', '.join(result.tier_titles))}</strong></p>")
        if result.roles_given:
            items = "".join(f"<li>@{escape(role)}</li>" for role in result.roles_given)
            parts.append(f"<p>Roles given:</p><ul>{items}</ul>")
        else:
            parts.append("<p>No new roles were needed.</p>")
    return _PAGE.format(
        title=escape(result.headline),
        css="ok" if result.ok else "bad",
        headline=escape(result.headline),
        body="".join(parts),
    )
