"""Fuzz the decoding path with mutated real recordings: `python scripts/fuzz_decode.py --examples 5000`.

Every shared clip format the service accepts (WAV PCM/A-law/mu-law, MP3, FLAC, Vorbis, Opus, AMR, M4A) is made from
a real clip by the real FFmpeg encoders, then Hypothesis mutates it: flipped and overwritten bytes, header fields set
to extreme integers, truncation, spliced and repeated regions, and files of two formats glued together. Each mutant
goes through `decode_audio` with the service's default limits. A case fails when decoding raises anything but the
service's own client errors (4xx), takes longer than `--max-seconds`, or returns more audio than the limits allow;
Hypothesis then shrinks it to a minimal mutant. A crash in FFmpeg kills this process, which is why the test suite
runs it as a child process.

Prints one summary line of JSON at the end: cases, outcomes by error code, slowest and 99th-percentile decode time,
and how far the peak RSS grew.
"""

import argparse
import json
import logging
import resource
import struct
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audio_factory import FORMATS, clip_samples, encode  # noqa: E402

from asr_service.audio.decode import SAMPLE_RATE, decode_audio  # noqa: E402
from asr_service.config import Settings  # noqa: E402
from asr_service.errors import AsrError  # noqa: E402
from asr_service.transcription import decode_limits  # noqa: E402

SEED_CLIP = "en_speechbrain_example1.wav"
EXTREME_INTS = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def corpus() -> dict[str, bytes]:
    samples = clip_samples(SEED_CLIP)
    return {fmt.name: encode(samples, fmt) for fmt in FORMATS}


@st.composite
def mutants(draw: st.DrawFn, files: dict[str, bytes]) -> bytes:
    data = bytearray(files[draw(st.sampled_from(sorted(files)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "int", "truncate", "splice", "repeat", "glue"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=64))
            data[at : at + len(chunk)] = chunk
        elif kind == "int":
            width, code = draw(st.sampled_from([(2, "<H"), (4, "<I"), (2, ">H"), (4, ">I")]))
            value = draw(st.sampled_from(EXTREME_INTS)) & (0xFFFF if width == 2 else 0xFFFFFFFF)
            data[at : at + width] = struct.pack(code, value)
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            del data[at : at + draw(st.integers(1, 4096))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 4096))] * draw(st.integers(2, 50))
        elif kind == "glue":
            data += files[draw(st.sampled_from(sorted(files)))]
    return bytes(data)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=5.0, help="slowest acceptable decode of one mutant")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a truncated file's "decoding stopped after" warning, thousands of times

    files = corpus()
    limits = decode_limits(Settings())
    outcomes: Counter[str] = Counter()
    durations: list[float] = []
    decode_audio(files["wav-pcm16"], limits)  # warm up FFmpeg before the memory baseline
    baseline = rss_mb()

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
    ordered = sorted(durations)
    summary = {
        "cases": len(durations),
        "outcomes": dict(outcomes.most_common()),
        "max_decode_ms": round(ordered[-1] * 1000, 1),
        "p99_decode_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1),
        "rss_growth_mb": round(rss_mb() - baseline, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
