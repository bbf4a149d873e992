"""`asr-service batch` over a folder of real recordings: outputs, ledger, a corrupt file, resuming, and the same run
through the real nginx with basic auth."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio_factory import FORMATS, Format, clip_samples, encode, wav_bytes
from conftest import tiny_settings
from processes import free_port

from asr_service.proxy import running_nginx
from asr_service.server import serve_in_thread

USER, PASSWORD = "night-shift", "batch-pw-1"


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """Two days of recordings in sub-folders, in several formats, one without a file extension, one corrupt, and a
    note that is not audio."""
    root = tmp_path / "in"
    (root / "2026-11-21").mkdir(parents=True)
    (root / "2026-11-22" / "site-b").mkdir(parents=True)
    (root / "2026-11-21" / "call-001.wav").write_bytes(wav_bytes(clip_samples("zh_funasr_llamacpp_sample.wav")))
    (root / "2026-11-21" / "call-002.mp3").write_bytes(encode(clip_samples("en_speechbrain_example1.wav"), FORMATS[3]))
    (root / "2026-11-22" / "call-003.flac").write_bytes(encode(clip_samples("zh_firered_IT0011W0001.wav"), FORMATS[4]))
    amr = encode(clip_samples("zh_wenet_aishell-BAC009S0724W0121.wav"), Format("amr", "amr", "libopencore_amrnb", 8000))
    (root / "2026-11-22" / "site-b" / "recorder-export-17").write_bytes(amr)  # found by its content
    (root / "2026-11-22" / "broken.mp3").write_bytes(os.urandom(5000))
    (root / "2026-11-22" / "notes.txt").write_text("回访记录：下午三点前回电\n", encoding="utf-8")
    return root


AUDIO = [
    "2026-11-21/call-001.wav",
    "2026-11-21/call-002.mp3",
    "2026-11-22/call-003.flac",
    "2026-11-22/site-b/recorder-export-17",
]


def batch(args: list[str], env: dict[str, str]) -> tuple[int, dict, str]:
    run = subprocess.run(
        [sys.executable, "-m", "asr_service", "batch", *args], env=env, capture_output=True, text=True, timeout=300
    )
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    return run.returncode, summary, run.stdout + run.stderr


@pytest.fixture
def env(tiny_glmasr_dir: Path, model_cache: Path) -> dict[str, str]:
    return {**os.environ, "ASR_MODEL": str(tiny_glmasr_dir), "ASR_DTYPE": "float32", "ASR_CACHE_DIR": str(model_cache)}


def read_ledger(out: Path) -> list[dict[str, str]]:
    raw = (out / "ledger.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, so Excel reads Chinese"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def check_outputs(out: Path, formats: list[str]) -> list[dict[str, str]]:
    ledger = read_ledger(out)
    assert [row["file"] for row in ledger] == sorted([*AUDIO, "2026-11-22/broken.mp3"])
    for row in ledger:
        if row["file"].endswith("broken.mp3"):
            assert row["error"] and not row["text"]
            continue
        assert not row["error"] and float(row["duration"]) > 1
        result = json.loads((out / Path(row["file"]).with_suffix(".json")).read_text(encoding="utf-8"))
        assert result["text"] == row["text"] and result["duration"] == pytest.approx(float(row["duration"]), abs=0.01)
        for extension in formats:
            assert (out / Path(row["file"]).with_suffix(f".{extension}")).exists()
    assert not (out / "2026-11-22" / "notes.json").exists(), "a text file is not a recording"
    return ledger


def test_a_folder_is_transcribed_with_outputs_and_ledger_and_a_rerun_skips_it(
    recordings: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    status, summary, log = batch([str(recordings), "--out", str(out), "--formats", "json,txt,srt"], env)
    assert status == 1, "a failed file makes the exit status non-zero"
    assert summary["done"] == 4 and summary["skipped"] == 0 and len(summary["failed"]) == 1, log
    assert summary["failed"][0]["file"] == "2026-11-22/broken.mp3"
    assert "failed: 2026-11-22/broken.mp3" in log
    first = check_outputs(out, ["json", "txt", "srt"])

    (recordings / "2026-11-21" / "call-001.wav").rename(recordings / "2026-11-21" / "call-001-renamed.wav")
    status, summary, _ = batch([str(recordings), "--out", str(out)], env)
    assert summary["done"] == 0 and summary["skipped"] == 4, "done files (also renamed ones) are not done again"
    assert len(summary["failed"]) == 1, "the failed one is retried"
    assert {row["text"] for row in read_ledger(out)} == {row["text"] for row in first}


def test_an_interrupted_run_resumes_where_it_stopped(recordings: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "asr_service", "batch", str(recordings), "--out", str(out), "--concurrency", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".batch-state.jsonl"
    deadline = time.monotonic() + 120
    while not (state.exists() and state.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    finished_before = state.read_text().count("\n")
    assert finished_before < 5, "killed halfway"
    status, summary, log = batch([str(recordings), "--out", str(out)], env)
    assert summary["skipped"] + summary["done"] == 4 and summary["skipped"] >= 1, log
    check_outputs(out, ["json", "txt"])


@pytest.fixture
def nginx_url(tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(tiny_settings(tiny_glmasr_dir, model_cache, data_dir=tmp_path / "service")) as service:
        with running_nginx([service.removeprefix("http://")], free_port(), {USER: PASSWORD}) as url:
            yield url


def test_the_same_folder_through_nginx_with_basic_auth(recordings: Path, tmp_path: Path, nginx_url: str) -> None:
    out = tmp_path / "out"
    args = [str(recordings), "--out", str(out), "--url", nginx_url, "--user", USER, "--password", PASSWORD]
    status, summary, log = batch([*args, "--formats", "json,vtt"], dict(os.environ))
    assert status == 1 and summary["done"] == 4 and len(summary["failed"]) == 1, log
    check_outputs(out, ["json", "vtt"])
    wrong = [str(recordings), "--out", str(tmp_path / "out2"), "--url", nginx_url, "--user", USER, "--password", "x"]
    status, summary, _ = batch(wrong, dict(os.environ))
    assert status == 1 and summary["done"] == 0 and len(summary["failed"]) == 5
