"""Fuzz the decoding path with mutated real recordings: `python scripts/fuzz_decode.py --examples 5000`.

Every shared clip format the service accepts (WAV PCM/A-law/mu-law, MP3, FLAC, Vorbis, Opus, AMR, M4A) is made from
a real clip by the real FFmpeg encoders, then Hypothesis mutates it: flipped and overwritten bytes, header fields set
to extreme integers, truncation, spliced and repeated regions, and files of two formats glued together. Each mutant
goes through `decode_audio` with the service's default limits. A case fails when decoding raises anything but the
service's own client errors (4xx), takes longer than `--max-seconds`, or returns more audio than the limits allow;
Hypothesis then shrinks it to a minimal mutant. A crash in FFmpeg kills this process, which is why the test suite
runs it as a child process.

Prints one summary line of JSON at the end: cases, outcomes by error code, slowest and 99th-percentile decode time,
and how far resident memory grew over a second pass of random mutants (after a first pass of the same size).
"""

import argparse
import contextlib
import json
import logging
import os
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audio_factory import FORMATS, clip_samples, encode  # noqa: E402

from asr_service.audio.decode import SAMPLE_RATE, DecodeLimits, decode_audio  # noqa: E402
from asr_service.config import Settings  # noqa: E402
from asr_service.errors import AsrError  # noqa: E402
from asr_service.transcription import decode_limits  # noqa: E402

T = TypeVar("T")
SEED_CLIP = "en_speechbrain_example1.wav"
EXTREME_INTS = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def corpus() -> dict[str, bytes]:
    samples = clip_samples(SEED_CLIP)
    return {fmt.name: encode(samples, fmt) for fmt in FORMATS}


class Chooser(Protocol):
    """Where a mutation's choices come from: Hypothesis (which can shrink a failure) or a seeded random generator
    (cheap enough for the memory phase, where Hypothesis' own bookkeeping would hide a leak)."""

    def integer(self, low: int, high: int) -> int: ...
    def pick(self, options: Sequence[T]) -> T: ...
    def binary(self, low: int, high: int) -> bytes: ...


class HypothesisChooser:
    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def pick(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))

    def binary(self, low: int, high: int) -> bytes:
        return self._draw(st.binary(min_size=low, max_size=high))


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def pick(self, options: Sequence[T]) -> T:
        return self._rng.choice(options)

    def binary(self, low: int, high: int) -> bytes:
        return self._rng.randbytes(self._rng.randint(low, high))


def mutate(files: dict[str, bytes], choose: Chooser) -> bytes:
    names = sorted(files)
    data = bytearray(files[choose.pick(names)])
    for _ in range(choose.integer(1, 4)):
        kind = choose.pick(["flip", "overwrite", "int", "truncate", "splice", "repeat", "glue"])
        at = choose.integer(0, max(0, len(data) - 1))
        if kind == "flip" and data:
            data[at] ^= 1 << choose.integer(0, 7)
        elif kind == "overwrite":
            chunk = choose.binary(1, 64)
            data[at : at + len(chunk)] = chunk
        elif kind == "int":
            width, code = choose.pick([(2, "<H"), (4, "<I"), (2, ">H"), (4, ">I")])
            value = choose.pick(EXTREME_INTS) & (0xFFFF if width == 2 else 0xFFFFFFFF)
            data[at : at + width] = struct.pack(code, value)
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            del data[at : at + choose.integer(1, 4096)]
        elif kind == "repeat":
            data[at:at] = data[at : at + choose.integer(1, 4096)] * choose.integer(2, 50)
        elif kind == "glue":
            data += files[choose.pick(names)]
    return bytes(data)


@st.composite
def mutants(draw: st.DrawFn, files: dict[str, bytes]) -> bytes:
    return mutate(files, HypothesisChooser(draw))


def rss_mb() -> float:
    """Resident memory now (not the peak)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_growth(files: dict[str, bytes], limits: DecodeLimits, cases: int, seed_value: int) -> float:
    """Resident memory growth over `cases` random mutants decoded after a warm-up of the same size: a leak in
    FFmpeg or in our buffers shows here."""

    def decode_many(rng: random.Random) -> None:
        for _ in range(cases):
            with contextlib.suppress(AsrError):
                decode_audio(mutate(files, RandomChooser(rng)), limits)

    decode_many(random.Random(seed_value))
    baseline = rss_mb()
    decode_many(random.Random(seed_value + 1))
    return rss_mb() - baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=5.0, help="slowest acceptable decode of one mutant")
    parser.add_argument("--memory-cases", type=int, default=2000, help="mutants per half of the memory phase")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a truncated file's "decoding stopped after" warning, thousands of times

    files = corpus()
    limits = decode_limits(Settings())
    outcomes: Counter[str] = Counter()
    durations: list[float] = []

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(data=mutants(files))
    def decode_one(data: bytes) -> None:
        started = time.perf_counter()
        try:
            audio = decode_audio(data, limits)
        except AsrError as e:
            assert e.status < 500, f"{e.code} ({e.status}): {e.message}"
            outcomes[e.code] += 1
        else:
            outcomes["decoded"] += 1
            assert audio.samples.shape[1] <= limits.max_seconds * SAMPLE_RATE
            assert audio.channel_count <= limits.max_channels
            assert np.isfinite(audio.samples).all(), "decoded samples must be finite"
        elapsed = time.perf_counter() - started
        durations.append(elapsed)
        assert elapsed < args.max_seconds, f"decoding took {elapsed:.1f} s"

    decode_one()
    growth = memory_growth(files, limits, args.memory_cases, args.seed)
    ordered = sorted(durations)
    summary = {
        "cases": len(durations),
        "outcomes": dict(outcomes.most_common()),
        "max_decode_ms": round(ordered[-1] * 1000, 1),
        "p99_decode_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1),
        "memory_cases": args.memory_cases,
        "rss_growth_mb": round(growth, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
