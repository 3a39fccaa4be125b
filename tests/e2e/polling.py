"""Waiting for something the bot does in the background, with a deadline instead of a fixed sleep."""

import asyncio
from collections.abc import Callable


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll until `predicate()` holds; return the seconds it took, or fail the test at the deadline."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return loop.time() - start
