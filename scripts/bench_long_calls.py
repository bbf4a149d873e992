"""Long-call and front-end benchmark: `make bench-long` (or `python scripts/bench_long_calls.py [--only SECTION]`).

Builds 8 kHz MP3 calls from the shared clips, then measures:
  calls     each call in a fresh process pinned to one CPU core: preprocessing (decode + channel decision + VAD,
            all channels) as a multiple of real time, before (Silero's own whole-signal scan) and now (block-wise
            scan), and peak RSS; then the whole pipeline with the tiny GLM-ASR (so the model's memory stays small).
  scaling   preprocessing throughput (audio seconds per second) of the real transcription path over 8 concurrent
            calls with ASR_PREPROCESS_WORKERS=1 and =2, the model replaced by one that answers at once.
  probes    a 5-second request's latency through HTTP with the embedded model, alone and while a 45-minute stereo
            call is being segmented and transcribed (20 probes, one after another).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

CLIPS = ["en_jfk.flac", "zh_wenet_aishell-BAC009S0724W0121.wav", "en_speechbrain_example1.wav"]


def build_calls(folder: Path, only: str | None = None) -> dict[str, Path]:
    from audio_factory import Format, Placement, build_call, encode

    mp3 = Format("mp3-8k", "mp3", "libmp3lame", 8_000, options=(("b", "32000"),))
    mp3_stereo = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))
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
            Placement(t, CLIPS[i % len(CLIPS)], channel=i % channels)
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
    from asr_service.audio.channels import decide_channels
    from asr_service.audio.decode import decode_audio
    from asr_service.audio.vad import SpeechDetector, vad_gain
    from asr_service.config import Settings
    from asr_service.engines.glm_asr import GLM_ASR_PROFILE
    from asr_service.transcription import decode_limits, vad_params

    settings = Settings(dtype="float32", model=str(tiny_model) if tiny_model else "auto", preprocess_workers=1)
    params = vad_params(settings, GLM_ASR_PROFILE)
    data = file.read_bytes()
    baseline_mb = peak_rss_mb()
    if mode in ("preprocess", "preprocess-before"):
        started = time.perf_counter()
        audio = decode_audio(data, decode_limits(settings))
        decoded = time.perf_counter()
        split = decide_channels(audio, "auto") == "split"
        signals = [audio.samples[c] for c in range(audio.channel_count)] if split else [audio.mono()]
        if mode == "preprocess":
            detector = SpeechDetector(params)
            spans = sum(len(detector.detect_speech(signal)) for signal in signals)
        else:  # what the service did before: Silero's own scan of a levelled copy of the whole signal
            import silero_vad

            from asr_service.audio.vad import SpeechSpan, merge_spans

            model = silero_vad.load_silero_vad(onnx=True)
            spans = 0
            for signal in signals:
                gain = vad_gain(signal)
                levelled = signal if gain == 1 else np.multiply(signal, np.float32(gain), dtype=np.float32)
                raw = silero_vad.get_speech_timestamps(
                    torch.from_numpy(levelled),
                    model,
                    threshold=params.threshold,
                    min_speech_duration_ms=params.min_speech_ms,
                    min_silence_duration_ms=params.min_silence_ms,
                    speech_pad_ms=params.speech_pad_ms,
                    max_speech_duration_s=params.max_segment_seconds,
                )
                found = [SpeechSpan(int(r["start"]), min(int(r["end"]), signal.size)) for r in raw]
                max_length = int(params.max_segment_seconds * 16000)
                spans += len(merge_spans(found, int(params.merge_gap_seconds * 16000), max_length))
        finished = time.perf_counter()
        return {
            "file": file.name,
            "mode": mode,
            "audio_s": round(audio.duration, 1),
            "channels": audio.channel_count,
            "spans": spans,
            "decode_x_realtime": round(audio.duration / (decoded - started), 1),
            "vad_x_realtime_per_channel": round(audio.duration * len(signals) / (finished - decoded), 1),
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
                "mode": mode,
                "segments": len(result.segments),
                "text_kb": round(len(result.model_dump_json()) / 1024),
                "pipeline_s": round(time.perf_counter() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
            }

    return asyncio.run(run())


def run_calls(folder: Path, only: str | None) -> None:
    from make_tiny_glmasr import make_tiny_glmasr

    calls = build_calls(folder, only)
    tiny = make_tiny_glmasr(folder / "tiny-glmasr")
    for mode in ("preprocess-before", "preprocess", "pipeline"):
        for name, path in calls.items():
            if mode == "preprocess-before" and name.startswith("4h"):
                continue  # minutes of the old scan, nothing new to learn
            command = [sys.executable, __file__, "--child", str(path), "--mode", mode, "--tiny-model", str(tiny)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


async def preprocessing_throughput(workers: int, files: list[bytes]) -> tuple[float, float]:
    from bench import InstantEngine

    from asr_service.app import create_app
    from asr_service.config import Settings
    from asr_service.schemas import TranscriptionOptions

    app = create_app(Settings(preprocess_workers=workers), engine=InstantEngine())
    async with app.router.lifespan_context(app) as state:
        transcriber = state["transcriber"]
        started = time.perf_counter()
        results = await asyncio.gather(*(transcriber.transcribe(data, TranscriptionOptions()) for data in files))
        return sum(r.duration for r in results), time.perf_counter() - started


def run_scaling() -> None:
    from audio_factory import Format, Placement, build_call, encode

    mp3 = Format("mp3-8k", "mp3", "libmp3lame", 8_000, options=(("b", "32000"),))
    mp3_stereo = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))
    files = []
    for i in range(8):
        channels = 1 + i % 2
        placements = [Placement(t, CLIPS[(i + k) % 3], channel=k % channels) for k, t in enumerate(range(2, 280, 15))]
        files.append(
            encode(build_call(placements, 300, channels=channels, seed=i), mp3_stereo if channels == 2 else mp3)
        )
    rates = {}
    for workers in (1, 2):
        audio, wall = asyncio.run(preprocessing_throughput(workers, files))
        rates[workers] = audio / wall
        print(f"preprocessing, {workers} worker(s): {audio:.0f} s of audio in {wall:.1f} s = {audio / wall:.0f} x")
    print(f"scaling 2 workers / 1 worker: {rates[2] / rates[1]:.2f}")


async def probe_latencies(url: str, probe: bytes, long_call: bytes, count: int) -> tuple[list[float], list[float]]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=3600) as client:

        async def one() -> float:
            started = time.perf_counter()
            response = await client.post("/asr", files={"file": ("probe.wav", probe)})
            response.raise_for_status()
            return time.perf_counter() - started

        await one()  # warm-up
        alone = [await one() for _ in range(5)]
        long_request = asyncio.create_task(client.post("/asr", files={"file": ("call.mp3", long_call)}))
        await asyncio.sleep(0.5)
        during = []
        for _ in range(count):
            during.append(await one())
            if long_request.done():
                break
        response = await long_request
        response.raise_for_status()
        print(f"long call: {len(response.json()['segments'])} segments, finished after the probes: {len(during)}")
        return alone, during


def run_probes(folder: Path) -> None:
    """Two long calls: 45 minutes of stereo line hiss (what segmentation alone costs others: nothing to transcribe),
    and the same with speech every 120 s (its segments also share the model with the probes)."""
    from audio_factory import AUDIO_DIR, Format, build_call, encode

    from asr_service.config import Settings
    from asr_service.server import serve_in_thread

    mp3_stereo = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))
    calls = {
        "45-min stereo call of line hiss (segmentation only)": encode(build_call([], 45 * 60, channels=2), mp3_stereo),
        "45-min stereo call with speech every 120 s": build_calls(folder, "45min-stereo-sparse")[
            "45min-stereo-sparse"
        ].read_bytes(),
    }
    probe = (AUDIO_DIR / "zh_funasr_llamacpp_sample.wav").read_bytes()  # 6 s
    with serve_in_thread(Settings()) as url:
        for name, long_call in calls.items():
            alone, during = asyncio.run(probe_latencies(url, probe, long_call, 20))
            median_alone = statistics.median(alone)
            print(f"{name}: probe alone median {median_alone:.2f} s, worst {max(alone):.2f} s")
            print(
                f"  during it ({len(during)} probes): median {statistics.median(during):.2f} s "
                f"({statistics.median(during) / median_alone:.2f}x alone), worst {max(during):.2f} s "
                f"({max(during) / median_alone:.2f}x alone)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="preprocess", help=argparse.SUPPRESS)
    parser.add_argument("--tiny-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["calls", "scaling", "probes"], action="append")
    parser.add_argument("--call", help="with calls: just this call (e.g. 45min-mono-sparse)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mode, args.tiny_model)))
        return
    sections = args.only or ["calls", "scaling", "probes"]
    with tempfile.TemporaryDirectory() as tmp:
        if "calls" in sections:
            run_calls(Path(tmp), args.call)
        if "scaling" in sections:
            run_scaling()
        if "probes" in sections:
            run_probes(Path(tmp))


if __name__ == "__main__":
    main()
