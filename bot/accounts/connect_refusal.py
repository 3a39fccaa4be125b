"""Why the connect callback won't bind now (the re-check of review 5, R5-12), and whether that may pass.

A refusal on Discord's own answer (not a member, no Manage Server, below a mapped role, the bot not in the server)
ends the attempt: the picker's pending creator pair is forgotten at once. A refusal because Discord didn't answer
(a 5xx, a rate limit, no connection) decides nothing about the admin (review 6, R6-2): the attempt stays as it was,
so the same step can be tried again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectRefusal:
    #: One friendly sentence for the page.
    sentence: str
    #: Discord didn't answer: nothing is forgotten, and the same step may be tried again.
    retry: bool = False
