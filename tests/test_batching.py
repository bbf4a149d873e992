"""The batching worker through the real app and the tiny GLM-ASR: shared batches, isolation of failures, drops."""

import asyncio
import contextlib
import re
import time
from itertools import pairwise
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from audio_factory import clip_samples, manifest, wav_bytes
from conftest import tiny_settings
from engines import POISON_PEAK, GatedEngine, PoisonedEngine, SlowEngine

from asr_service.batching.batcher import Batcher, BatchPolicy
from asr_service.engines.base import Chunk, ChunkResult, TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine
from asr_service.metrics import ServiceMetrics
from asr_service.server import serve_in_thread

EIGHT_CLIPS = [clip.file for clip in manifest() if clip.channels == 1][:8]


def batch_histogram(metrics_text: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^asr_batch_size_bucket\{le="([^"]+)"\} (\S+)$', metrics_text, re.M)
    }


async def post_file(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/asr", files={"file": ("call.wav", data)})


@pytest.fixture(scope="module")
def tiny_engine(tiny_glmasr_dir: Path) -> GlmAsrEngine:
    return GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16))


async def test_concurrent_requests_share_batches_and_match_solo_results(glm: httpx.AsyncClient) -> None:
    files = [(Path(manifest()[0].path).parent / name).read_bytes() for name in EIGHT_CLIPS]
    solo = []
    for data in files:
        response = await post_file(glm, data)
        assert response.status_code == 200, response.text
        solo.append(response.json())
    before = batch_histogram((await glm.get("/metrics")).text)
    together = await asyncio.gather(*(post_file(glm, data) for data in files))
    after = batch_histogram((await glm.get("/metrics")).text)
    assert all(r.status_code == 200 for r in together)
    for alone, shared in zip(solo, together, strict=True):
        assert shared.json()["text"] == alone["text"]
        assert [s["text"] for s in shared.json()["segments"]] == [s["text"] for s in alone["segments"]]
    assert any(alone["text"] for alone in solo), "the tiny model should emit text"
    batches_over_one = (after["+Inf"] - after["1.0"]) - (before["+Inf"] - before["1.0"])
    assert batches_over_one >= 1, (before, after)


async def test_one_poisoned_request_fails_alone(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = PoisonedEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_wait_ms=300)
    clean = [clip_samples(name) for name in EIGHT_CLIPS[:4]]
    poisoned = clip_samples(EIGHT_CLIPS[4])
    poisoned = np.clip(poisoned / np.abs(poisoned).max() * 4, -1, 1)  # clipped at full scale
    assert np.abs(poisoned).max() >= POISON_PEAK
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            solo = [(await post_file(client, wav_bytes(s))).json()["text"] for s in clean]
            responses = await asyncio.gather(*(post_file(client, wav_bytes(s)) for s in [*clean, poisoned]))
            assert [r.status_code for r in responses] == [200, 200, 200, 200, 500]
            assert [r.json()["text"] for r in responses[:4]] == solo
            assert responses[4].json()["error"]["code"] == "internal_error"
            assert max(engine.batch_sizes) > 1, "the poisoned segment must have shared a batch"
            assert (await client.get("/readyz")).status_code == 200
            assert (await post_file(client, wav_bytes(clean[0]))).json()["text"] == solo[0]


async def test_a_busy_worker_leaves_probes_responsive_and_sheds_load(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = GatedEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, queue_size=1, max_batch_size=1, retry_after_seconds=7)
    speech = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            first = asyncio.create_task(post_file(client, speech))
            await asyncio.to_thread(engine.entered.wait, 30)  # the model is now busy
            second = asyncio.create_task(post_file(client, speech))  # fills the queue (size 1)
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            health = await client.get("/healthz")
            health_ms = (time.perf_counter() - started) * 1000
            assert health.status_code == 200
            print(f"/healthz answered in {health_ms:.1f} ms while a batch ran")
            assert health_ms < 1000, f"/healthz took {health_ms:.0f} ms while a batch ran"
            refused = await post_file(client, speech)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"
            assert refused.headers["retry-after"] == "7"
            engine.gate.set()
            assert (await first).status_code == 200
            assert (await second).status_code == 200
            assert (await client.get("/readyz")).status_code == 200


async def test_requests_of_clients_that_left_never_reach_the_model(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = GatedEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_batch_size=1)
    busy = clip_samples("zh_firered_IT0011W0001.wav")
    leaving = clip_samples("en_speechbrain_example1.wav")
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            first = asyncio.create_task(post_file(client, wav_bytes(busy)))
            await asyncio.to_thread(engine.entered.wait, 30)
            async with httpx.AsyncClient(base_url=url, timeout=120) as impatient:
                gone = asyncio.create_task(post_file(impatient, wav_bytes(leaving)))
                await asyncio.sleep(1.0)
                gone.cancel()  # the client hangs up while its segment waits in the queue
                await asyncio.gather(gone, return_exceptions=True)
            await asyncio.sleep(0.5)
            engine.gate.set()
            assert (await first).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert re.search(r'^asr_segments_total\{outcome="dropped"\} [1-9]', metrics, re.M), metrics
            assert len(engine.seen) == 1


async def test_a_request_slower_than_the_timeout_gets_504(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = GatedEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, request_timeout_seconds=1)
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            response = await post_file(client, wav_bytes(clip_samples("zh_firered_IT0011W0001.wav")))
            engine.gate.set()
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "timeout"
            assert (await client.get("/readyz")).status_code == 200


async def test_an_overloaded_model_turns_newcomers_away_instead_of_making_them_wait(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    """With the model at 1 s a segment and a 3-second bound on the estimated wait, a burst of 12 calls is split:
    the first few are admitted and finish within the bound (plus their own turn), the rest get 503 `overloaded`
    with Retry-After at once, and the service stays ready."""
    engine = SlowEngine(tiny_engine, seconds=1.0)
    settings = tiny_settings(
        tiny_glmasr_dir, model_cache, max_batch_size=1, max_queue_wait_seconds=3, retry_after_seconds=4
    )
    speech = wav_bytes(clip_samples("zh_firered_BAC009S0764W0121.wav"))  # 4.2 s: one segment
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            assert (await post_file(client, speech)).status_code == 200  # the model's speed is now measured

            async def timed() -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                response = await post_file(client, speech)
                return response, time.perf_counter() - started

            results = await asyncio.gather(*(timed() for _ in range(12)))
            admitted = [seconds for r, seconds in results if r.status_code == 200]
            refused = [(r, seconds) for r, seconds in results if r.status_code != 200]
            print(f"admitted {len(admitted)} (slowest {max(admitted):.1f} s), refused {len(refused)}")
            assert 2 <= len(admitted) <= 6, [r.status_code for r, _ in results]
            assert max(admitted) < 3 + 2 + 1.5, "an admitted call waits at most the bound plus about its own turn"
            for response, seconds in refused:
                assert response.status_code == 503 and response.json()["error"]["code"] == "overloaded"
                assert response.headers["retry-after"] == "4" and seconds < 1
            assert (await client.get("/readyz")).status_code == 200


class BatchRecordingEngine(GatedEngine):
    """Gated, and notes each batch's segment lengths in samples."""

    def __init__(self, inner: GlmAsrEngine) -> None:
        super().__init__(inner)
        self.batches: list[list[int]] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.batches.append([chunk.audio.size for chunk in chunks])
        return super().transcribe_batch(chunks)


async def test_waiting_batch_jobs_run_in_length_order_and_lose_nothing(tiny_engine: GlmAsrEngine) -> None:
    """With three batches' worth of batch-job segments waiting, they run shortest first, so no batch decodes on for
    one long row, and every segment gets the text it gets alone."""
    engine = BatchRecordingEngine(tiny_engine)
    policy = BatchPolicy(
        max_batch_size=2, max_wait_ms=10, queue_size=100, retry_after_seconds=1, length_window_batches=3
    )
    batcher = Batcher(engine, policy, ServiceMetrics())
    speech = clip_samples("zh_glmasr_example_zh.wav")[0]
    # Of 6, 1.5, 5, 2, 4 and 3 seconds: arrival order is not length order.
    chunks = [Chunk(speech[: int(seconds * 16000)]) for seconds in (6, 1.5, 5, 2, 4, 3)]
    alone = [tiny_engine.transcribe_batch([chunk])[0].text for chunk in chunks]
    await batcher.start()
    try:
        with contextlib.ExitStack() as admitted:
            first = batcher.submit(admitted.enter_context(batcher.admitted("batch")), [chunks[0]])
            await asyncio.to_thread(engine.entered.wait, 30)  # the model is busy; the jobs' segments queue up
            waiting = [
                batcher.submit(admitted.enter_context(batcher.admitted("batch")), [chunk])[0] for chunk in chunks
            ]
            engine.gate.set()
            outcomes = await asyncio.gather(*first, *waiting)
    finally:
        await batcher.stop()
    assert [outcome.result.text for outcome in outcomes[1:]] == alone
    window = engine.batches[1:4]
    assert [len(batch) for batch in window] == [2, 2, 2], engine.batches
    assert all(max(a) <= min(b) for a, b in pairwise(window)), engine.batches
