"""Round-robin across requests: a short call is not stuck behind every segment of a long one."""

from asr_service.batching.fair_queue import FairQueue


async def test_requests_take_turns() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.put_all("long", [f"long-{i}" for i in range(100)])
    queue.put_all("short", ["short-0", "short-1"])
    taken = [await queue.get() for _ in range(6)]
    assert taken == ["long-0", "short-0", "long-1", "short-1", "long-2", "long-3"]
    assert len(queue) == 96
    assert queue.get_nowait() == "long-4"
    assert len(queue.drain()) == 95 and queue.get_nowait() is None
