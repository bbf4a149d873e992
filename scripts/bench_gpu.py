"""GLM-ASR model-path benchmark: `make bench-gpu` (CUDA, float16) or `--device cpu --dtype bfloat16` (short).

Builds the full-size GLM-ASR architecture (`GlmAsrConfig()` defaults, random weights: the real ones cannot be
fetched here; `make_tiny_glmasr.py --full-size`), saves it and loads it through `from_pretrained` like the real model.
Its generation config suppresses the end tokens, so every segment emits exactly its budget (`--tokens-per-second`,
about what Mandarin speech needs) and runs are comparable. Segments are the shared recordings cut by the service's
own VAD. `same` is the share of segments whose text equals the first variant's (on CPU in float32: equivalence).

Prints, per engine variant: real-time factor (audio seconds per wall second) for batches of 8 in arrival order and in
length order, the latency of a lone 5-second segment, seconds per stage (features, encoder, prefill, decode) per batch
(with the prefill compiled, the encoder's time is in the prefill's), peak GPU memory, the attention kernels one batch
called; then, through the HTTP service, real-time factor at each concurrency, the median latency of a lone 5-second
request and the histogram of batch sizes the worker formed at each concurrency (its warm-up request included).
`--start-up VARIANT` times `asr-service serve` from launch to ready, on a first start (an empty `ASR_CACHE_DIR`) and on
a restart (the same folder: compiled kernels loaded, not compiled). `--json FILE` keeps every figure.
"""

import argparse
import asyncio
import gc
import importlib.util
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from bench import InstantEngine, http_throughput, mono_clips
from make_tiny_glmasr import make_full_size_glmasr

from asr_service.audio import SAMPLE_RATE
from asr_service.audio.decode import decode_audio
from asr_service.audio.vad import SpeechDetector
from asr_service.config import Settings
from asr_service.engines.base import AsrEngine, Chunk, PreparesInputs, TokenBudget
from asr_service.engines.glm_asr import GLM_ASR_PROFILE, GlmAsrEngine, GlmAsrOptions
from asr_service.server import SERVER_THREAD, serve_in_thread
from asr_service.transcription import decode_limits, vad_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from processes import start_service  # noqa: E402

VARIANTS: dict[str, GlmAsrOptions] = {
    "now": GlmAsrOptions(),
    "device-features": GlmAsrOptions(features_on_device=True),
    "trim": GlmAsrOptions(encoder_window="trim"),
    "compile": GlmAsrOptions(compile=True),
    "compile+device-features": GlmAsrOptions(compile=True, features_on_device=True),
    "compile+device-features+trim": GlmAsrOptions(compile=True, features_on_device=True, encoder_window="trim"),
    "loop": GlmAsrOptions(decoder="loop"),
    "compile+loop": GlmAsrOptions(compile=True, decoder="loop"),
    "compile+device-features+loop": GlmAsrOptions(compile=True, features_on_device=True, decoder="loop"),
    "compile+loop+unprepared": GlmAsrOptions(compile=True, decoder="loop", prepare_ahead=False),
    "compile+loop+prefill": GlmAsrOptions(compile=True, decoder="loop", compile_prefill=True),
}
"""Engine options to compare; `before` (the engine of an earlier commit, `--before FILE`) is measured first."""


def speech_segments(count: int) -> tuple[list[Chunk], list[bytes]]:
    """The shared mono recordings cut by the service's VAD (GLM-ASR's profile), repeated to `count` segments."""
    settings = Settings()
    detector = SpeechDetector(vad_params(settings, GLM_ASR_PROFILE))
    files = [clip.read_bytes() for clip in mono_clips()]
    segments: list[Chunk] = []
    for data in files:
        mono = decode_audio(data, decode_limits(settings)).mono()
        segments += [Chunk(mono[span.start : span.end]) for span in detector.detect_speech(mono)]
    return [segments[i % len(segments)] for i in range(count)], files


def five_second_wav() -> bytes:
    """A lone 5-second request: the first 5 s of the longest shared recording, as 16-bit WAV."""
    import io
    import wave

    settings = Settings()
    longest = max((decode_audio(clip.read_bytes(), decode_limits(settings)).mono() for clip in mono_clips()), key=len)
    samples = (np.clip(longest[: 5 * SAMPLE_RATE], -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


@dataclass
class EngineFigures:
    load_seconds: float
    warm_up_seconds: float
    rtfx_arrival: float
    rtfx_by_length: float
    prepare_ms_per_segment: float
    """Inputs prepared ahead (`PreparesInputs`), on one thread, outside the timed batches: the service does it on
    its preprocessing threads while the GPU runs other batches. 0 for a variant that prepares nothing."""
    lone_5s_ms: float
    stage_ms_per_batch: dict[str, float]
    peak_allocated_gib: float
    peak_reserved_gib: float
    attention_kernels: dict[str, int]
    """aten's attention operators called over a batch of two segments, by name: `flash`, `efficient`, `cudnn` or
    `math` say which kernel PyTorch's fused attention chose. Calls replayed in a CUDA graph are not counted."""
    texts: list[str] = field(default_factory=list, repr=False)
    same: float | None = None
    """Share of segments whose text equals the first variant's."""


def attention_kernels(engine: AsrEngine, batch: list[Chunk]) -> dict[str, int]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        engine.transcribe_batch(batch)
    prefix = "aten::_scaled_dot_product_"
    return {event.key.removeprefix(prefix): event.count for event in profile.key_averages() if prefix in event.key}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_engine(
    make_engine: Callable[[], AsrEngine], segments: list[Chunk], batch_size: int, device: str
) -> EngineFigures:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    engine = make_engine()
    loaded = time.perf_counter()
    if isinstance(engine, GlmAsrEngine):
        engine.warm_up(sorted({1, batch_size}))  # the sizes this run uses
    else:
        engine.transcribe_batch(segments[:1])
    _sync(device)
    warm = time.perf_counter()
    audio = sum(chunk.duration for chunk in segments)
    prepare_started = time.perf_counter()
    if isinstance(engine, PreparesInputs):  # as the service's preprocessing threads do, before the batches form
        segments = engine.prepare(segments)
    prepared = any(chunk.prepared is not None for chunk in segments)
    prepare_seconds = time.perf_counter() - prepare_started if prepared else 0.0

    def run(model: AsrEngine, order: list[Chunk]) -> tuple[float, list[str]]:
        _sync(device)
        t0 = time.perf_counter()
        texts = []
        for i in range(0, len(order), batch_size):
            texts += [result.text for result in model.transcribe_batch(order[i : i + batch_size])]
        _sync(device)
        return audio / (time.perf_counter() - t0), texts

    rtfx_arrival, texts = run(engine, segments)
    rtfx_by_length, _ = run(engine, sorted(segments, key=lambda chunk: chunk.duration))
    five = Chunk(np.concatenate([chunk.audio for chunk in segments])[: 5 * SAMPLE_RATE])
    lone = []
    for _ in range(7 if device == "cuda" else 1):  # on a CPU one full-size window takes seconds
        _sync(device)
        t0 = time.perf_counter()
        engine.transcribe_batch([five])
        _sync(device)
        lone.append(time.perf_counter() - t0)
    stages: dict[str, float] = {}
    batches = 0
    if isinstance(engine, GlmAsrEngine):
        engine.stage_seconds = stages
        for i in range(0, len(segments), batch_size):
            engine.transcribe_batch(segments[i : i + batch_size])
            batches += 1
        engine.stage_seconds = None
    kernels = attention_kernels(engine, segments[:2])  # two lengths: the padded prompts' masked attention too
    figures = EngineFigures(
        load_seconds=loaded - started,
        warm_up_seconds=warm - loaded,
        rtfx_arrival=rtfx_arrival,
        rtfx_by_length=rtfx_by_length,
        prepare_ms_per_segment=prepare_seconds / len(segments) * 1000,
        lone_5s_ms=statistics.median(lone) * 1000,
        stage_ms_per_batch={stage: seconds / max(batches, 1) * 1000 for stage, seconds in stages.items()},
        peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
        peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30 if device == "cuda" else 0.0,
        attention_kernels=kernels,
        texts=texts,
    )
    del engine
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return figures


def load_before_engine(path: Path) -> type:
    """The GlmAsrEngine class of an earlier commit (`git show REV:src/asr_service/engines/glm_asr.py > FILE`)."""
    spec = importlib.util.spec_from_file_location("glm_asr_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GlmAsrEngine


def batch_size_counts(metrics_text: str) -> dict[float, float]:
    """Cumulative batches per size bucket from the service's own Prometheus histogram."""
    return {
        float(match[1]): float(match[2])
        for match in re.finditer(r'asr_batch_size_bucket\{le="([^"]+)"\} ([0-9.e+]+)', metrics_text)
        if match[1] != "+Inf"
    }


def batch_size_histogram(before: dict[float, float], after: dict[float, float]) -> dict[str, int]:
    """Batches per size formed between two readings of `batch_size_counts` (cumulative buckets made per-size)."""
    histogram, previous = {}, 0.0
    for upper in sorted(after):
        cumulative = after[upper] - before.get(upper, 0.0)
        if cumulative - previous:
            histogram[f"<={upper:g}"] = int(cumulative - previous)
        previous = cumulative
    return histogram


def client_throughput(url: str, files: list[bytes], concurrency: int) -> tuple[float, float]:
    """`http_throughput` in the client's own process, so the client's Python does not share the service's GIL and
    cores' time is not counted as the service's."""
    return asyncio.run(http_throughput(url, files, concurrency))


def thread_cpu_seconds(thread: threading.Thread) -> float:
    """CPU seconds one thread of this process has used, from /proc (Linux)."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


async def lone_request_ms(url: str, wav: bytes, times: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        await client.post("/asr", files={"file": ("five.wav", wav)})
        latencies = []
        for _ in range(times):
            t0 = time.perf_counter()
            response = await client.post("/asr", files={"file": ("five.wav", wav)})
            response.raise_for_status()
            latencies.append(time.perf_counter() - t0)
    return statistics.median(latencies) * 1000


def measure_http(
    settings: Settings,
    files: list[bytes],
    concurrencies: list[int],
    requests: int,
    device: str,
    engine: AsrEngine | None = None,
) -> dict[str, object]:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    figures: dict[str, object] = {}
    started = time.perf_counter()
    client = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with client, serve_in_thread(settings, engine, start_timeout=1800) as url:
        figures["start_seconds"] = time.perf_counter() - started
        figures["lone_5s_request_p50_ms"] = asyncio.run(lone_request_ms(url, five_second_wav(), 15))
        event_loop = next(thread for thread in threading.enumerate() if thread.name == SERVER_THREAD)
        for concurrency in concurrencies:
            sent = [files[i % len(files)] for i in range(max(requests, concurrency))]
            before = batch_size_counts(httpx.get(f"{url}/metrics").text)
            cpu, loop_cpu = time.process_time(), thread_cpu_seconds(event_loop)
            audio, wall = client.submit(client_throughput, url, sent, concurrency).result()
            cpu, loop_cpu = time.process_time() - cpu, thread_cpu_seconds(event_loop) - loop_cpu
            figures[f"rtfx_concurrency_{concurrency}"] = audio / wall
            # What the service's CPU carries (the client runs in its own process): cores in use, real time per
            # core, and the most its one event loop could carry at this cost per request.
            figures[f"cores_busy_concurrency_{concurrency}"] = cpu / wall
            figures[f"rtfx_per_core_concurrency_{concurrency}"] = audio / max(cpu, 1e-9)
            figures[f"event_loop_rtfx_ceiling_concurrency_{concurrency}"] = audio / max(loop_cpu, 1e-9)
            after = batch_size_counts(httpx.get(f"{url}/metrics").text)
            figures[f"batch_sizes_concurrency_{concurrency}"] = batch_size_histogram(before, after)
    if device == "cuda":
        figures["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return figures


def measure_start_up(settings: Settings, scratch: Path) -> dict[str, float]:
    """Seconds from launching `asr-service serve` (its own process, as deployed) until /readyz answers, with an
    empty cache folder and again with the folder the first start filled: what an operator waits after installing
    and after a restart."""
    cache = scratch / "start-up-cache"
    env = {f"ASR_{name.upper()}": str(value) for name, value in settings.model_dump(exclude_unset=True).items()}
    env = {**os.environ, **env, "ASR_CACHE_DIR": str(cache), "ASR_DATA_DIR": str(scratch / "start-up-data")}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)  # the service's own choice, in its cache folder
    figures: dict[str, float] = {}
    for name in ("first_start_seconds", "restart_seconds"):
        started = time.perf_counter()
        process, _ = start_service(env, scratch / "start-up.log", seconds=1800)
        figures[name] = time.perf_counter() - started
        process.terminate()
        process.wait(timeout=300)
    return figures


def service_settings(options: GlmAsrOptions, model_dir: Path, args: argparse.Namespace, dtype_name: str) -> Settings:
    """The service as the benchmark runs it: this variant's options, the forced output length, batches of
    `--batch-size`, and no caller timed out while the queue is long."""
    return Settings(
        model=str(model_dir),
        device=args.device,
        dtype=dtype_name,
        tokens_per_second=args.tokens_per_second,
        min_new_tokens=4,
        max_batch_size=args.batch_size,
        glm_encoder_window=options.encoder_window,
        glm_features_on_device=options.features_on_device,
        glm_compile=options.compile,
        glm_compile_prefill=options.compile_prefill,
        glm_decoder=options.decoder,
        glm_prepare_ahead=options.prepare_ahead,
        max_queue_wait_seconds=3600,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--model", type=Path, help="an existing GLM-ASR folder instead of the random full-size one")
    parser.add_argument("--segments", type=int, help="segments per engine run (default 128 on CUDA, 4 on a CPU)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens-per-second", type=float, default=5.0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of: {', '.join(VARIANTS)}; or none")
    parser.add_argument("--before", type=Path, help="glm_asr.py of an earlier commit, measured as `before`")
    parser.add_argument("--http", default="", help="variant to serve through HTTP (empty: no HTTP run)")
    parser.add_argument(
        "--front-end", action="store_true", help="also serve an engine that answers at once: the front end's ceiling"
    )
    parser.add_argument("--start-up", default="", help="variant whose start-up and restart to time (empty: none)")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=64, help="requests per HTTP run (at least the concurrency)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    args.segments = args.segments or (128 if args.device == "cuda" else 4)
    dtype_name = args.dtype or ("float16" if args.device == "cuda" else "bfloat16")
    dtype = getattr(torch, dtype_name)
    budget = TokenBudget(args.tokens_per_second, 4)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "dtype": dtype_name,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory() as scratch:
        if args.model is None:
            t0 = time.perf_counter()
            model_dir = make_full_size_glmasr(Path(scratch) / "glm-asr-full-size", dtype, args.device)
            report["checkpoint_build_seconds"] = time.perf_counter() - t0
        else:
            model_dir = args.model
        segments, files = speech_segments(args.segments)
        report["segments"] = len(segments)
        report["audio_seconds"] = sum(chunk.duration for chunk in segments)
        report["mean_segment_seconds"] = report["audio_seconds"] / len(segments)
        print(json.dumps(report), flush=True)
        engines: dict[str, Callable[[], AsrEngine]] = {}
        if args.before is not None:
            before = load_before_engine(args.before)
            engines["before"] = lambda: before(model_dir, args.device, dtype, budget)
        for name in [n for n in args.variants.split(",") if n and n != "none"]:
            options = VARIANTS[name]
            engines[name] = lambda options=options: GlmAsrEngine(model_dir, args.device, dtype, budget, options)
        results: dict[str, object] = {}
        first: list[str] | None = None
        for name, make_engine in engines.items():
            figures = measure_engine(make_engine, segments, args.batch_size, args.device)
            first = figures.texts if first is None else first
            figures.same = sum(a == b for a, b in zip(first, figures.texts, strict=True)) / len(first)
            results[name] = {key: value for key, value in figures.__dict__.items() if key != "texts"}
            print(f"{name}: {json.dumps(results[name])}", flush=True)
        report["engine"] = results
        http: dict[str, object] = {}
        concurrencies = [int(c) for c in args.concurrency.split(",")]
        if args.http:
            settings = service_settings(VARIANTS[args.http], model_dir, args, dtype_name)
            http[args.http] = measure_http(settings, files, concurrencies, args.requests, args.device)
            print(f"http {args.http}: {json.dumps(http[args.http])}", flush=True)
        if args.front_end:
            settings = Settings(max_queue_wait_seconds=3600, max_batch_size=args.batch_size)
            http["front-end"] = measure_http(settings, files, concurrencies, args.requests, "cpu", InstantEngine())
            print(f"http front-end: {json.dumps(http['front-end'])}", flush=True)
        if http:
            report["http"] = http
        if args.start_up:
            settings = service_settings(VARIANTS[args.start_up], model_dir, args, dtype_name)
            report["start_up"] = {args.start_up: measure_start_up(settings, Path(scratch))}
            print(f"start-up {args.start_up}: {json.dumps(report['start_up'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0


def print_table(report: dict[str, object]) -> None:
    print(f"\n{report['device']}, {report['dtype']}, torch {report['torch']}, {report['date']}")
    print(f"{report['segments']} segments, {report['audio_seconds']:.0f} s audio", end=", ")
    print(f"mean {report['mean_segment_seconds']:.1f} s; stages in ms per batch, prep in ms per segment")
    engine = report.get("engine", {})
    assert isinstance(engine, dict)
    columns = ["RTFx", "sorted", "5s ms", "prep", "feat", "enc", "pre", "dec", "GiB", "warm s", "same"]
    print(f"{'variant':30}" + "".join(f"{column:>8}" for column in columns))
    for name, f in engine.items():
        stages = f["stage_ms_per_batch"]
        values = [f["rtfx_arrival"], f["rtfx_by_length"], f["lone_5s_ms"], f["prepare_ms_per_segment"]]
        values += [stages.get(stage, 0.0) for stage in ("features", "encoder", "prefill", "decode")]
        values += [f["peak_reserved_gib"], f["warm_up_seconds"], f["same"]]
        print(f"{name:30}" + "".join(f"{value:8.2f}" for value in values))
    for name, f in engine.items():
        print(f"attention kernels, {name}: {json.dumps(f['attention_kernels'])}")
    for name, figures in (report.get("http") or {}).items():
        print(f"HTTP {name}: {json.dumps(figures)}")


if __name__ == "__main__":
    sys.exit(main())
