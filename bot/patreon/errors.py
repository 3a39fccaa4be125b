"""What can go wrong talking to Patreon, split by what the caller should do about it.

- `PatreonAuthError`: the token or the OAuth grant is bad. Refresh once or ask the user to re-link; never loop.
- `PatreonUnavailable`: Patreon failed or throttled us past our patience. Do nothing destructive; try later.
- `PatreonBadResponse`: Patreon answered with something we cannot read. Treat like unavailable, but log it loudly.
- `PatreonRequestError`: any other 4xx. Our request was wrong (`PatreonNotFound`, `PatreonCursorExpired`, ...).
"""

from __future__ import annotations

from typing import Any


class PatreonError(Exception):
    """Base class: anything the Patreon client raises on purpose."""

    def __init__(self, message: str, *, status: int | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: The JSON:API `errors[]` items (or the OAuth error, normalised) when the body had them.
        self.errors: list[dict[str, Any]] = errors or []


class PatreonAuthError(PatreonError):
    """401/403 from the API, or 400/401 from the token endpoint.

    `error` is the OAuth error code (`invalid_grant`, `invalid_request`, ...) from the token endpoint, or the
    JSON:API `code_name` (`Unauthorized`) from the API.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        self.error = error
        self.error_description = error_description


class PatreonUnavailable(PatreonError):
    """Upstream failed (5xx, timeout, connection error, or 429 after our retries): do nothing destructive."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        #: Seconds Patreon asked us to wait, when it said (429 only).
        self.retry_after = retry_after


class PatreonBadResponse(PatreonError):
    """A success status with a body that is not JSON, or not the JSON:API document we asked for."""


class PatreonRequestError(PatreonError):
    """A 4xx other than 401/403/429: retrying the same request will not help."""


class PatreonNotFound(PatreonRequestError):
    """404: the member, campaign or webhook does not exist (any more)."""


class PatreonCursorExpired(PatreonRequestError):
    """The `page[cursor]` was rejected: restart the listing from the first page rather than stop short."""
