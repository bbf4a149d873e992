"""Jobs and batch figures: `python scripts/bench_jobs.py [--hours 1.0]`.

1. Job-submission overhead: each shared mono clip sent to `/asr`, then as a job (`POST /jobs`, polled until done),
   one at a time, on the same server; prints the median wall time of both and their ratio.
2. Overnight throughput: a folder of synthetic calls (shared clips placed in line hiss, 5 minutes each) adding up to
   `--hours` of audio, transcribed by `asr-service batch` (in-process, the embedded model), then the same files sent
   one by one to `/asr`; prints audio hours per wall hour for both and their ratio.
3. Time to resume after SIGKILL: a service killed while 4 jobs run, started again on the same data folder; prints
   the seconds from the kill until the first resumed job is running again and until all are done.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from audio_factory import Placement, build_call, manifest, wav_bytes  # noqa: E402
from processes import start_service  # noqa: E402

CALL_SECONDS = 300


def run_job(client: httpx.Client, data: bytes, name: str) -> dict:
    job_id = client.post("/jobs", files={"file": (name, data)}, data={"priority": "interactive"}).json()["id"]
    while (job := client.get(f"/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
        time.sleep(0.02)
    return job


def submission_overhead(url: str) -> None:
    clips = [clip for clip in manifest() if clip.channels == 1]
    direct, queued = [], []
    with httpx.Client(base_url=url, timeout=600) as client:
        for clip in clips:
            data = clip.path.read_bytes()
            started = time.perf_counter()
            client.post("/asr", files={"file": (clip.file, data)}).raise_for_status()
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert run_job(client, data, clip.file)["status"] == "succeeded"
            queued.append(time.perf_counter() - started)
    a, b = statistics.median(direct), statistics.median(queued)
    print(
        f"1. {len(clips)} clips one at a time: /asr median {a * 1000:.0f} ms, /jobs (submit + poll) median "
        f"{b * 1000:.0f} ms: {b / a:.2f}x, +{(b - a) * 1000:.0f} ms per call"
    )


def make_calls(folder: Path, hours: float) -> list[Path]:
    names = [clip.file for clip in manifest() if clip.channels == 1]
    paths = []
    for i in range(max(1, round(hours * 3600 / CALL_SECONDS))):
        placements = [Placement(5 + 14 * k, names[(i + k) % len(names)]) for k in range(CALL_SECONDS // 14 - 1)]
        path = folder / f"day/call-{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes(build_call(placements, CALL_SECONDS, seed=i)))
        paths.append(path)
    return paths


def throughput(env: dict[str, str], work: Path, hours: float, url: str) -> None:
    calls = make_calls(work / "in", hours)
    audio_hours = len(calls) * CALL_SECONDS / 3600
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "asr_service", "batch", str(work / "in"), "--out", str(work / "out")],
        env=env,
        capture_output=True,
        text=True,
    )
    batch_wall = time.perf_counter() - started
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["done"] == len(calls), run.stdout[-2000:] + run.stderr[-2000:]
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=3600) as client:
        for path in calls:
            client.post("/asr", files={"file": (path.name, path.read_bytes())}).raise_for_status()
    serial_wall = time.perf_counter() - started
    batch_rate, serial_rate = audio_hours / (batch_wall / 3600), audio_hours / (serial_wall / 3600)
    print(
        f"2. {len(calls)} calls, {audio_hours:.2f} h of audio: batch {batch_wall:.0f} s = {batch_rate:.1f} audio h "
        f"per wall h; one by one to /asr {serial_wall:.0f} s = {serial_rate:.1f} audio h per wall h; "
        f"ratio {batch_rate / serial_rate:.2f}x"
    )


def resume_after_kill(env: dict[str, str], work: Path) -> None:
    env = {**env, "ASR_DATA_DIR": str(work / "resume-data"), "ASR_JOB_POLL_SECONDS": "0.2"}
    call = wav_bytes(build_call([Placement(2 + 12 * k, "zh_funasr_llamacpp_sample.wav") for k in range(10)], 125))
    process, url = start_service(env, work / "resume.log")
    ids = [httpx.post(f"{url}/jobs", files={"file": (f"c{i}.wav", call)}).json()["id"] for i in range(4)]
    while not any(httpx.get(f"{url}/jobs/{i}").json()["status"] == "running" for i in ids):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = time.perf_counter()
    process, url = start_service(env, work / "resume.log")
    ready = time.perf_counter() - killed
    first_running = None
    while True:
        statuses = [httpx.get(f"{url}/jobs/{i}").json()["status"] for i in ids]
        if first_running is None and "running" in statuses:
            first_running = time.perf_counter() - killed
        if all(status == "succeeded" for status in statuses):
            break
        time.sleep(0.05)
    print(
        f"3. SIGKILL with 4 jobs in flight: ready again after {ready:.1f} s, a job running again after "
        f"{first_running:.1f} s, all 4 done after {time.perf_counter() - killed:.1f} s"
    )
    process.terminate()
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="audio in the batch folder")
    parser.add_argument("--only", choices=["overhead", "throughput", "resume"])
    args = parser.parse_args()
    env = {**os.environ, "ASR_MODEL": os.environ.get("ASR_MODEL", "whisper-base")}
    with tempfile.TemporaryDirectory(prefix="asr-bench-jobs-") as folder:
        work = Path(folder)
        env["ASR_DATA_DIR"] = str(work / "data")
        process, url = start_service(env, work / "service.log")
        try:
            if args.only in (None, "overhead"):
                submission_overhead(url)
            if args.only in (None, "throughput"):
                throughput(env, work, args.hours, url)
        finally:
            process.terminate()
            process.wait()
        if args.only in (None, "resume"):
            resume_after_kill(env, work)


if __name__ == "__main__":
    main()
