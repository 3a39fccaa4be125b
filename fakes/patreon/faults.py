"""Scripted trouble for the next N matching requests, as real HTTP: a 5xx, a 429 with Retry-After, a slow answer,
no answer at all, the edge giving up on a slow Patreon (Cloudflare's 524), a connection cut mid-answer, or a 200
whose body is not JSON. And body rewrites: the fake's own answer on a route, changed the way a glitching Patreon
would change it (a cursor missing, a relationship dropped).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["fail", "rate_limit", "delay", "hang", "edge_timeout", "cut", "malformed"]

#: `rewrite(document, query)`: the JSON document the fake was about to send, and the request's query; returns the
#: document to send instead (it may change the one it is given).
Rewrite = Callable[[Any, Mapping[str, str]], Any]

#: What a `malformed` answer carries unless told otherwise: JSON cut off part way, with a 200.
TRUNCATED_JSON = b'{"data": [{"attributes": {"full_name": "'

#: What Cloudflare, in front of Patreon, answers when Patreon itself does not answer in time: HTML, not JSON.
EDGE_TIMEOUT_PAGE = (
    "<!DOCTYPE html><html><head><title>www.patreon.com | 524: A timeout occurred</title></head><body>"
    "<h1>A timeout occurred <span>Error code 524</span></h1><p>The origin web server timed out responding to "
    "this request.</p></body></html>"
)


@dataclass(slots=True)
class Fault:
    """One scripted trouble; see `FakePatreon.fail_next` and its neighbours for what each kind sends."""

    kind: FaultKind
    pattern: re.Pattern[str]
    remaining: int
    status: int = 500
    retry_after: float = 1.0
    seconds: float = 0.0
    body: bytes = TRUNCATED_JSON


@dataclass(slots=True)
class BodyRewrite:
    """Pass the fake's successful JSON answers on matching paths through `rewrite`; None: until cleared."""

    pattern: re.Pattern[str]
    rewrite: Rewrite
    remaining: int | None = None


class FaultPlan:
    """Faults are matched in the order they were added; each fires `count` times, then is gone.

    Rewrites are kept apart: a fault stops the request before the fake answers, a rewrite changes the answer, so
    a test can have both on one route (the first page rewritten, the second failing).
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._rewrites: list[BodyRewrite] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def add_rewrite(self, rewrite: BodyRewrite) -> None:
        self._rewrites.append(rewrite)

    def take(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.pattern.search(path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def take_rewrite(self, path: str) -> BodyRewrite | None:
        for rewrite in self._rewrites:
            if rewrite.pattern.search(path):
                if rewrite.remaining is not None:
                    rewrite.remaining -= 1
                    if rewrite.remaining <= 0:
                        self._rewrites.remove(rewrite)
                return rewrite
        return None

    def clear(self) -> None:
        """Forget every fault and rewrite still waiting."""
        self._faults.clear()
        self._rewrites.clear()


def seconds_text(value: float) -> str:
    """`Retry-After` is whole seconds in HTTP; fractions are allowed here so tests stay fast."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
