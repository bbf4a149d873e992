"""`scripts/bench_gpu.py` in its CPU mode on the tiny checkpoint: the benchmark runs end to end (engine and HTTP)
and reports every figure, so the GPU run on a lent machine does not fail on a broken script."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_on_cpu_and_reports_every_figure(tiny_glmasr_dir: Path, tmp_path: Path) -> None:
    report_file = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            "bench_gpu.py",
            "--device=cpu",
            "--dtype=float32",
            f"--model={tiny_glmasr_dir}",
            "--segments=8",
            "--variants=now,trim,loop",
            "--http=loop",
            "--front-end",
            "--start-up=loop",
            "--concurrency=1,2",
            "--requests=2",
            f"--json={report_file}",
        ],
        cwd=REPO / "scripts",
        check=True,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(report_file.read_text())
    assert report["segments"] == 8 and report["audio_seconds"] > 8
    for figures in report["engine"].values():
        assert figures["rtfx_arrival"] > 0 and figures["lone_5s_ms"] > 0
        assert set(figures["stage_ms_per_batch"]) == {"features", "encoder", "prefill", "decode"}
    assert report["engine"]["now"]["same"] == 1.0
    # PyTorch's fused attention, both towers (2 encoder layers + 2 language-model layers per prefill and step)
    assert report["engine"]["now"]["attention_kernels"]["flash_attention_for_cpu"] >= 4
    assert report["engine"]["now"]["prepare_ms_per_segment"] > 0  # inputs prepared before the batches, timed apart
    assert report["engine"]["trim"]["prepare_ms_per_segment"] == 0  # a trimmed window depends on the batch
    assert report["engine"]["loop"]["same"] == 1.0  # our greedy loop decodes what generate decodes
    http = report["http"]["loop"]
    assert http["rtfx_concurrency_1"] > 0 and http["rtfx_concurrency_2"] > 0 and http["lone_5s_request_p50_ms"] > 0
    for concurrency in (1, 2):  # the warm-up request and at least one batch per request sent
        assert sum(http[f"batch_sizes_concurrency_{concurrency}"].values()) >= 2
    for concurrency in (1, 2):  # the service's CPU, measured apart from the client's (its own process)
        assert 0 < http[f"cores_busy_concurrency_{concurrency}"] < 4
        assert http[f"rtfx_per_core_concurrency_{concurrency}"] > 0
        assert http[f"event_loop_rtfx_ceiling_concurrency_{concurrency}"] >= http[f"rtfx_concurrency_{concurrency}"]
    start_up = report["start_up"]["loop"]  # `asr-service serve` launched twice on one cache folder
    assert 0 < start_up["first_start_seconds"] < 300 and 0 < start_up["restart_seconds"] < 300
    front_end = report["http"]["front-end"]  # the service around an engine that answers at once
    assert front_end["rtfx_concurrency_2"] > http["rtfx_concurrency_2"]
