"""HTTP helpers shared by the fake's route modules: JSON bodies and JSON:API errors as Patreon sends them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from fakes.patreon.documents import error_document

UNAUTHORIZED_DETAIL = (
    "The server could not verify that you are authorized to access the URL requested.  You either supplied the "
    "wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials "
    "required."
)


class ApiFailure(Exception):
    """Raised inside a handler to answer with `response` (caught by the fake's middleware)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(doc, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def api_error(
    status: int,
    title: str,
    detail: str,
    *,
    code: int | None = 1,
    code_name: str = "",
    parameter: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    doc = error_document(
        status,
        title,
        detail,
        code=code,
        code_name=code_name,
        parameter=parameter,
        error_id=str(uuid.uuid4()),
        **extra,
    )
    return json_response(doc, status, headers)


def unauthorized() -> web.Response:
    """Byte-for-byte the shape of the real 401 (tests/data/patreon/error_401_unauthorized.json)."""
    return api_error(401, "Unauthorized", UNAUTHORIZED_DETAIL, code=1, code_name="Unauthorized")
