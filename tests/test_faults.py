"""Faults in the model and in the process: out of GPU memory, a call that never returns, and SIGTERM. Each one is
provoked on the real app and answered the way a caller and a load balancer need."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from audio_factory import Placement, build_call, clip_samples, manifest, wav_bytes
from conftest import tiny_settings
from engines import HangingEngine, OutOfMemoryEngine
from processes import free_port

from asr_service.engines.base import TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine
from asr_service.server import serve_in_thread

MONO_CLIPS = [clip.file for clip in manifest() if clip.channels == 1][:8]


@pytest.fixture(scope="module")
def tiny_engine(tiny_glmasr_dir: Path) -> GlmAsrEngine:
    return GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16))


async def post_wav(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/asr", files={"file": ("call.wav", data)})


async def test_out_of_gpu_memory_halves_the_batch_and_loses_nothing(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = OutOfMemoryEngine(tiny_engine, fits=2)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_batch_size=8, max_wait_ms=500, oom_cooldown_seconds=8)
    files = [wav_bytes(clip_samples(name)) for name in MONO_CLIPS]
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            solo = [(await post_wav(client, data)).json()["text"] for data in files]
            assert max(engine.attempts) <= 2, "one clip at a time must fit"

            first = await asyncio.gather(*(post_wav(client, data) for data in files))
            assert [r.status_code for r in first] == [200] * len(files), [r.text for r in first]
            assert [r.json()["text"] for r in first] == solo, "halving must not change or lose a word"
            assert max(engine.attempts) > 2, "the concurrent requests must have tried a bigger batch"

            engine.attempts.clear()
            second = await asyncio.gather(*(post_wav(client, data) for data in files))
            assert [r.json()["text"] for r in second] == solo
            assert max(engine.attempts) <= 2, f"within the cool-down the ceiling stays lowered: {engine.attempts}"

            await asyncio.sleep(8.5)
            engine.attempts.clear()
            third = await asyncio.gather(*(post_wav(client, data) for data in files))
            assert [r.json()["text"] for r in third] == solo
            assert max(engine.attempts) > 2, f"after the cool-down the ceiling goes back up: {engine.attempts}"
            assert (await client.get("/readyz")).status_code == 200


async def test_a_hung_model_call_gets_504_and_the_worker_goes_on(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine
) -> None:
    engine = HangingEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_batch_size=1, engine_timeout_seconds=2)
    stuck_audio = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    queued_audio = wav_bytes(clip_samples("en_speechbrain_example1.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            stuck = asyncio.create_task(post_wav(client, stuck_audio))
            await asyncio.to_thread(engine.hung.wait, 30)
            queued = asyncio.create_task(post_wav(client, queued_audio))  # admitted while the model hangs
            await asyncio.sleep(0.5)
            started = time.perf_counter()
            timed_out = await stuck
            assert timed_out.status_code == 504 and timed_out.json()["error"]["code"] == "timeout"
            assert time.perf_counter() - started < 3
            served = await queued
            assert served.status_code == 200 and served.json()["text"], "the worker must go on past a stuck call"

            ready = await client.get("/readyz")
            assert ready.status_code == 503 and "stopped answering" in ready.json()["error"]["message"]
            refused = await post_wav(client, queued_audio)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
            assert refused.headers["retry-after"]

            engine.release.set()  # the stuck call ends after all
            for _ in range(50):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).status_code == 200
            again = await post_wav(client, queued_audio)
            assert again.status_code == 200 and again.json()["text"] == served.json()["text"]
            metrics = (await client.get("/metrics")).text
            assert 'asr_segments_total{outcome="timeout"} 1.0' in metrics


async def test_sigterm_finishes_admitted_work_refuses_new_work_and_exits_0(model_cache: Path, tmp_path: Path) -> None:
    """`asr-service serve` as Kubernetes runs it: SIGTERM while a call is being transcribed."""
    stack = contextlib.ExitStack()
    port = free_port()
    env = {
        **os.environ,
        "ASR_MODEL": "whisper-base",
        "ASR_CACHE_DIR": str(model_cache),
        "ASR_PORT": str(port),
        "ASR_SHUTDOWN_GRACE_SECONDS": "120",
    }
    log = stack.enter_context((tmp_path / "service.log").open("w+"))
    service = subprocess.Popen([sys.executable, "-m", "asr_service", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    placements = [Placement(2 + 12 * i, name) for i, name in enumerate(MONO_CLIPS[:5])]
    call = wav_bytes(build_call(placements, 65))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            for _ in range(600):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            in_flight = asyncio.create_task(post_wav(client, call))
            await asyncio.sleep(1.5)  # uploaded and admitted; whisper-base takes seconds for a minute of speech
            service.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)

            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["message"] == "the service is shutting down"
            assert (await client.get("/healthz")).status_code == 200
            refused = await post_wav(client, wav_bytes(clip_samples(MONO_CLIPS[0])))
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
            assert service.poll() is None, "the service must keep running while admitted work remains"

            finished = await in_flight
            assert finished.status_code == 200, finished.text
            assert len(finished.json()["segments"]) >= 4 and finished.json()["text"]
        assert service.wait(timeout=30) == 0
    finally:
        if service.poll() is None:
            service.kill()
        log.seek(0)
        print(log.read())
        stack.close()
