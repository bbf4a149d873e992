"""A bounded soak through the real nginx (`scripts/soak.py`): at twice the measured capacity, every request ends in
200 or in 429/503 with Retry-After, none hangs or vanishes, and the service's memory stays flat."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_twice_the_capacity_through_nginx_loses_nothing(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    env = {**os.environ, "ASR_DTYPE": "float32", "ASR_CACHE_DIR": str(model_cache)}
    command = [sys.executable, str(REPO / "scripts" / "soak.py"), "--model", str(tiny_glmasr_dir)]
    run = subprocess.run(
        [*command, "--seconds", "30", "--calibrate-seconds", "8", "--timeout", "120"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    print(run.stdout)
    summary = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("{")))
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert summary["requests"] >= 30 * 1.5 * summary["capacity_rps"], "the load must exceed the capacity"
    assert summary["statuses"].get("200", 0) >= 10
    assert summary["hung_or_vanished"] == 0 and summary["unexpected_status"] == 0
    assert summary["shed_without_retry_after"] == 0
    assert summary["rss_growth"] < 0.10
