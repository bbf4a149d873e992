"""Throughput benchmark: `make bench` (settings from ASR_* variables, e.g. ASR_MODEL).

Sends N concurrent requests over HTTP to the real service, once with batches of up to 8 and once with batches of 1,
then runs the engine directly on the same segments. Prints audio-seconds per wall-second and the ratios.
"""

import argparse
import asyncio
import csv
import os
import time
from pathlib import Path

import httpx

from asr_service.audio.decode import decode_audio
from asr_service.audio.vad import SpeechDetector
from asr_service.config import Settings
from asr_service.engines.base import Chunk, ChunkResult
from asr_service.engines.glm_asr import GLM_ASR_PROFILE
from asr_service.engines.loader import load_engine
from asr_service.server import serve_in_thread
from asr_service.transcription import decode_limits, vad_params

AUDIO_DIR = Path(os.environ.get("ASR_TEST_AUDIO_DIR", Path(__file__).resolve().parents[2] / "shared" / "audio"))


class InstantEngine:
    """Answers every segment at once with an empty text, so only the service around the model (upload, decoding,
    channel decision, voice activity, queue, response) is measured: the ceiling of the end-to-end figure."""

    model_name = "instant"
    profile = GLM_ASR_PROFILE

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        return [ChunkResult(text="", confidence=1.0) for _ in chunks]


def mono_clips() -> list[Path]:
    with open(AUDIO_DIR / "manifest.tsv", encoding="utf-8") as f:
        return [AUDIO_DIR / row["file"] for row in csv.DictReader(f, delimiter="\t") if row["channels"] == "1"]


async def http_throughput(url: str, files: list[bytes], concurrency: int) -> tuple[float, float]:
    """Returns (audio seconds, wall seconds) for all files sent with `concurrency` in flight."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=3600) as client:
        await client.post("/asr", files={"file": ("warmup", files[0])})

        async def one(data: bytes) -> float:
            async with limit:
                response = await client.post("/asr", files={"file": ("call", data)})
                response.raise_for_status()
                return response.json()["duration"]

        started = time.perf_counter()
        durations = await asyncio.gather(*(one(data) for data in files))
        return sum(durations), time.perf_counter() - started


def direct_throughput(settings: Settings, files: list[bytes]) -> tuple[float, float]:
    """The engine alone on the same segments, in batches of max_batch_size: the ceiling HTTP serving can reach."""
    engine = load_engine(settings)
    detector = SpeechDetector(vad_params(settings, engine.profile))
    audio_seconds, chunks = 0.0, []
    for data in files:
        audio = decode_audio(data, decode_limits(settings))
        audio_seconds += audio.duration
        mono = audio.mono()
        chunks += [Chunk(mono[s.start : s.end]) for s in detector.detect_speech(mono)]
    engine.transcribe_batch(chunks[:1])
    started = time.perf_counter()
    batch_size = settings.max_batch_size or engine.profile.max_batch_size
    for i in range(0, len(chunks), batch_size):
        engine.transcribe_batch(chunks[i : i + batch_size])
    return audio_seconds, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="requests per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-sizes", default="8,1", help="comma-separated max_batch_size values to compare")
    args = parser.parse_args()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    clips = mono_clips()
    files = [clips[i % len(clips)].read_bytes() for i in range(args.requests)]
    rates: dict[str, float] = {}
    for batch_size in batch_sizes:
        settings = Settings(max_batch_size=batch_size)
        with serve_in_thread(settings) as url:
            audio, wall = asyncio.run(http_throughput(url, files, args.concurrency))
        rates[f"http batch={batch_size}"] = audio / wall
        print(
            f"HTTP, max_batch_size={batch_size}: {audio:.1f} s audio in {wall:.2f} s = {audio / wall:.2f} x real time"
        )
    largest, smallest = max(batch_sizes), min(batch_sizes)
    audio, wall = direct_throughput(Settings(max_batch_size=largest), files)
    rates["direct"] = audio / wall
    print(f"direct engine, batches of {largest}: {audio:.1f} s audio in {wall:.2f} s = {audio / wall:.2f} x real time")
    print(f"model: {Settings().model}; requests {args.requests}, concurrency {args.concurrency}")
    for size in batch_sizes:
        if size != smallest:
            ratio = rates[f"http batch={size}"] / rates[f"http batch={smallest}"]
            print(f"ratio batch {size} / batch {smallest} (HTTP): {ratio:.2f}")
    print(f"ratio HTTP / direct engine (batch {largest}): {rates[f'http batch={largest}'] / rates['direct']:.2f}")


if __name__ == "__main__":
    main()
