"""Waiting for something the bot does in the background, with a deadline instead of a fixed sleep."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> float:
    """Poll until `predicate()` holds; return the seconds it took, or fail the test at the deadline.

    The predicate may be a coroutine function, for conditions only the store can answer (a job's attempts, an
    event's state).
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await _holds(predicate):
        if loop.time() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def _holds(predicate: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = predicate()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
