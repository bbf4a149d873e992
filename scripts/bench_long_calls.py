"""Long-call benchmark: `make bench-long` (or `python scripts/bench_long_calls.py`).

Builds 8 kHz MP3 calls from the shared clips (45 minutes stereo and mono with speech every 120 s, 45 minutes mono
with speech every 8 s, 4 hours mono), then, each in a fresh process pinned to one CPU core:
  1. preprocessing (decode + resample + VAD) speed as a multiple of real time, and its peak RSS;
  2. the whole transcription pipeline (tiny GLM-ASR engine, so the model's own memory stays negligible), peak RSS,
     to show memory does not grow with the number of segments beyond their text.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))


def build_calls(folder: Path, only: str | None = None) -> dict[str, Path]:
    from audio_factory import Format, Placement, build_call, encode

    mp3 = Format("mp3-8k", "mp3", "libmp3lame", 8_000, options=(("b", "32000"),))
    mp3_stereo = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))
    clips = ["en_jfk.flac", "zh_wenet_aishell-BAC009S0724W0121.wav", "en_speechbrain_example1.wav"]
    calls = {
        "45min-stereo-sparse": (45 * 60, 2, 120.0, mp3_stereo),
        "45min-mono-sparse": (45 * 60, 1, 120.0, mp3),
        "45min-mono-dense": (45 * 60, 1, 8.0, mp3),
        "4h-mono-sparse": (4 * 3600, 1, 120.0, mp3),
    }
    paths: dict[str, Path] = {}
    for name, (seconds, channels, every, fmt) in calls.items():
        if only and name != only:
            continue
        path = folder / f"{name}.mp3"
        placements = [
            Placement(t, clips[i % len(clips)], channel=i % channels)
            for i, t in enumerate(np.arange(1.0, seconds - 15, every))
        ]
        call = build_call(placements, seconds, channels=channels)
        path.write_bytes(encode(call, fmt))
        del call
        paths[name] = path
    return paths


def peak_rss_mb() -> int:
    """VmHWM, this process's own peak (getrusage's ru_maxrss is inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(file: Path, mode: str, tiny_model: Path | None) -> dict[str, object]:
    """Runs in its own process on one core; reports timings and peak RSS."""
    os.sched_setaffinity(0, {0})
    import torch

    torch.set_num_threads(1)
    from asr_service.audio.decode import decode_audio
    from asr_service.audio.vad import SpeechDetector
    from asr_service.config import Settings
    from asr_service.transcription import vad_params

    settings = Settings(dtype="float32", model=str(tiny_model) if tiny_model else "auto")
    data = file.read_bytes()
    baseline_mb = peak_rss_mb()
    if mode == "preprocess":
        started = time.perf_counter()
        audio = decode_audio(data, settings.max_audio_seconds)
        decoded = time.perf_counter()
        detector = SpeechDetector(vad_params(settings))
        spans = sum(len(detector.detect_speech(audio.samples[c])) for c in range(audio.channel_count))
        finished = time.perf_counter()
        return {
            "file": file.name,
            "audio_s": round(audio.duration, 1),
            "channels": audio.channel_count,
            "segments": spans,
            "decode_x_realtime": round(audio.duration / (decoded - started), 1),
            "vad_x_realtime": round(audio.duration * audio.channel_count / (finished - decoded), 1),
            "preprocess_x_realtime": round(audio.duration / (finished - started), 1),
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": baseline_mb,
        }
    from asr_service.app import create_app
    from asr_service.schemas import TranscriptionOptions

    async def run() -> dict[str, object]:
        app = create_app(settings)
        async with app.router.lifespan_context(app) as state:
            started = time.perf_counter()
            result = await state["transcriber"].transcribe(data, TranscriptionOptions())
            return {
                "file": file.name,
                "segments": len(result.segments),
                "text_kb": round(len(result.model_dump_json()) / 1024),
                "pipeline_s": round(time.perf_counter() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
            }

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="preprocess", help=argparse.SUPPRESS)
    parser.add_argument("--tiny-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", help="just this call (e.g. 4h-mono-sparse)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mode, args.tiny_model)))
        return
    from make_tiny_glmasr import make_tiny_glmasr

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("building calls ...", flush=True)
        calls = build_calls(folder, args.only)
        tiny = make_tiny_glmasr(folder / "tiny-glmasr")
        for mode in ("preprocess", "pipeline"):
            for path in calls.values():
                command = [sys.executable, __file__, "--child", str(path), "--mode", mode, "--tiny-model", str(tiny)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                print(mode, out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
