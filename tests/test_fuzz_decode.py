"""A bounded fuzz run of the decoding path (`scripts/fuzz_decode.py`) in a child process, so an FFmpeg crash fails
this test instead of killing the suite."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mutated_recordings_of_every_format_never_crash_hang_or_bloat() -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "fuzz_decode.py"),
            "--examples",
            "1500",
            "--seed",
            "20261122",
            "--memory-cases",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    print(summary)
    assert summary["cases"] >= 1500
    assert summary["outcomes"].get("decoded", 0) > 100 and summary["outcomes"].get("unsupported_audio", 0) > 100
    assert summary["max_decode_ms"] < 5000
    assert summary["rss_growth_mb"] < 20, "1,000 more mutants must not grow resident memory (measured: under 3 MB)"
