"""The small HTML pages a patron sees in their browser during and after linking."""

from __future__ import annotations

from html import escape

from bot.accounts.linking import LinkResult

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .ok{{color:#17803d}} .bad{{color:#b3261e}} li{{margin:.2rem 0}}</style></head>
<body><h1 class="{css}">{headline}</h1>{body}<p>You can close this tab and go back to Discord.</p></body></html>"""


def render_link_page(result: LinkResult, undo_token: str | None = None) -> str:
    """The callback's answer; a fresh link also gets the "This isn't me — undo" button (a POST with its CSRF token)."""
    parts = [f"<p>{escape(result.detail)}</p>"]
    if result.ok:
        if result.discord_name:
            parts.insert(0, f"<p>Discord account: <strong>@{escape(result.discord_name)}</strong></p>")
        if result.patreon_name:
            parts.insert(0, f"<p>Patreon account: <strong>{escape(result.patreon_name)}</strong></p>")
        if result.tier_titles:
            parts.append(f"<p>Tier: <strong>{escape(', '.join(result.tier_titles))}</strong></p>")
        if result.roles_given:
            items = "".join(f"<li>@{escape(role)}</li>" for role in result.roles_given)
            parts.append(f"<p>Roles given:</p><ul>{items}</ul>")
        else:
            parts.append("<p>No new roles were needed.</p>")
        if undo_token:
            parts.append(
                '<form method="post" action="/link/undo"><p>Not your accounts? Undo it now (within the hour):</p>'
                f'<input type="hidden" name="csrf" value="{escape(undo_token)}">'
                '<button type="submit" id="undo">This isn\'t me — undo</button></form>'
            )
    return _render(result, "".join(parts))


def render_result_page(result: LinkResult) -> str:
    """Any other step's answer (a refusal, the undo's outcome): the headline and one sentence."""
    return _render(result, f"<p>{escape(result.detail)}</p>")


def _render(result: LinkResult, body: str) -> str:
    return _PAGE.format(
        title=escape(result.headline), css="ok" if result.ok else "bad", headline=escape(result.headline), body=body
    )
