"""Senders waiting for work: one is woken for each batch that becomes ready, all of them when
the endpoint's state changes. Waking every sender for every batch would cost a task switch
per sender per batch on the hot path.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Waiters:
    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def wait(self, seconds: float | None) -> None:
        """Until woken, or ``seconds`` pass (None: no limit)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            pass
        finally:
            if not future.done():
                future.cancel()
                self._waiting.remove(future)

    def wake_one(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
                return

    def wake_all(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(None)
