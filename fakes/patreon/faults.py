"""Scripted trouble for the next N matching requests: 5xx, 429 with Retry-After, or a slow answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["fail", "rate_limit", "delay"]


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    pattern: re.Pattern[str]
    remaining: int
    status: int = 500
    retry_after: float = 1.0
    seconds: float = 0.0


class FaultPlan:
    """Faults are matched in the order they were added; each fires `count` times, then is gone."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.pattern.search(path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()


def seconds_text(value: float) -> str:
    """`Retry-After` is whole seconds in HTTP; fractions are allowed here so tests stay fast."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
