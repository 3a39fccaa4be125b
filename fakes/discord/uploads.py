"""Files attached to a message: the multipart `files[n]` parts of a send, an interaction answer or a followup.

Why: the bot answers `/patreon-admin patrons` with a CSV file, and tests must read what a person would download.
Source: discord/discord-api-docs `docs/reference.mdx` ("Uploading Files": a `multipart/form-data` body whose
`payload_json` part holds the JSON and whose `files[n]` parts hold the files, each described in
`payload_json.attachments[]` by `id` n; the message then lists Attachment objects with `id`, `filename`, `size`,
`url`, `proxy_url` and `content_type`) and `docs/topics/opcodes-and-status-codes` (40005 "Request entity too
large", HTTP 413, for a file over the upload limit). discord.py 2.7 names the parts `files[0]`, `files[1]`, ….
The fake keeps each file's bytes in `FakeDiscord.uploads` by attachment id; the url names the fake itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import errors
from .interactions import ATTACHMENT_SIZE_LIMIT

if TYPE_CHECKING:
    from .server import FakeDiscord


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


async def uploads_of(request: web.Request) -> list[Upload]:
    """The files of a multipart body in `files[n]` order (none for a JSON body); 413 40005 for one over the limit."""
    if not request.content_type.startswith("multipart/"):
        return []
    form = await request.post()  # aiohttp keeps the parsed form: the body was read once, by the middleware
    found: list[tuple[int, Upload]] = []
    for name, value in form.items():
        if not (name.startswith("files[") and name.endswith("]")) or not isinstance(value, web.FileField):
            continue
        data = value.file.read()
        if len(data) > ATTACHMENT_SIZE_LIMIT:
            raise errors.DiscordAPIError(413, 40005, "Request entity too large")
        index = int(name[len("files[") : -1]) if name[len("files[") : -1].isdigit() else len(found)
        found.append((index, Upload(value.filename, value.content_type, data)))
    return [upload for _, upload in sorted(found, key=lambda item: item[0])]


def attach(fake: FakeDiscord, message: dict[str, Any], uploads: list[Upload]) -> None:
    """Give the stored message its Attachment objects and keep the bytes (`fake.uploads[attachment id]`)."""
    if not uploads:
        return
    attachments = []
    for upload in uploads:
        attachment_id = fake.ids.next()
        fake.uploads[attachment_id] = upload.data
        url = f"{fake.base_url}/attachments/{message['channel_id']}/{attachment_id}/{upload.filename}"
        attachments.append(
            {
                "id": str(attachment_id),
                "filename": upload.filename,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
                "content_type": upload.content_type,
            }
        )
    message["attachments"] = attachments
