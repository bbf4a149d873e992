"""The segment queue: FIFO within a request, round-robin across requests.

A plain FIFO would put a 5-second call behind every segment of a 45-minute call queued before it; taking one
segment from each waiting request in turn bounds the short call's wait to a few batches.
"""

import asyncio
from collections import OrderedDict, deque
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


class _AwaitableQueue(Generic[T]):
    """`get()` and `wait_not_empty()` over a subclass's `get_nowait()` and `_not_empty` event."""

    _not_empty: asyncio.Event

    def get_nowait(self) -> T | None:
        raise NotImplementedError

    async def get(self) -> T:
        while (item := self.get_nowait()) is None:
            await self._not_empty.wait()
        return item

    async def wait_not_empty(self) -> None:
        await self._not_empty.wait()

    def take(self, count: int) -> list[T]:
        """Up to `count` items, in the order `get_nowait()` gives them."""
        items = []
        while len(items) < count and (item := self.get_nowait()) is not None:
            items.append(item)
        return items


class FairQueue(_AwaitableQueue[T]):
    def __init__(self) -> None:
        self._by_request: OrderedDict[str, deque[T]] = OrderedDict()
        self._size = 0
        self._not_empty = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put_all(self, request_id: str, items: list[T]) -> None:
        if not items:
            return
        self._by_request.setdefault(request_id, deque()).extend(items)
        self._size += len(items)
        self._not_empty.set()

    def get_nowait(self) -> T | None:
        """The next item of the request whose turn it is, or None when empty."""
        if not self._by_request:
            return None
        request_id, items = next(iter(self._by_request.items()))
        item = items.popleft()
        del self._by_request[request_id]
        if items:
            self._by_request[request_id] = items  # re-inserted last: its next segment waits its turn
        self._size -= 1
        if not self._size:
            self._not_empty.clear()
        return item

    def drain(self) -> list[T]:
        items = [item for queue in self._by_request.values() for item in queue]
        self._by_request.clear()
        self._size = 0
        self._not_empty.clear()
        return items


Priority = Literal["interactive", "batch"]


class PriorityFairQueue(_AwaitableQueue[T]):
    """Two fair queues: interactive requests (a caller waiting on the line) ahead of batch jobs (the overnight run).
    While both wait, at most `interactive_run` interactive items go before one batch item, so a flood of /asr
    requests slows the night's jobs but never stops them."""

    def __init__(self, interactive_run: int = 3) -> None:
        self._queues: dict[Priority, FairQueue[T]] = {"interactive": FairQueue(), "batch": FairQueue()}
        self.interactive_run = interactive_run
        self._streak = 0
        self._not_empty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queues["interactive"]) + len(self._queues["batch"])

    def depth(self, priority: Priority) -> int:
        return len(self._queues[priority])

    def put_all(self, request_id: str, items: list[T], priority: Priority = "interactive") -> None:
        self._queues[priority].put_all(request_id, items)
        if items:
            self._not_empty.set()

    def get_nowait(self) -> T | None:
        interactive, batch = self._queues["interactive"], self._queues["batch"]
        if len(interactive) and (not len(batch) or self._streak < self.interactive_run):
            self._streak += 1
            item = interactive.get_nowait()
        else:
            self._streak = 0
            item = batch.get_nowait()
        if not len(self):
            self._not_empty.clear()
        return item

    def drain(self) -> list[T]:
        self._not_empty.clear()
        return self._queues["interactive"].drain() + self._queues["batch"].drain()
