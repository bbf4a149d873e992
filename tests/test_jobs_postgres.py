"""Several replicas sharing one PostgreSQL queue of jobs: work is split, nothing runs twice, and a replica's jobs
are taken over by another when it dies."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audio_factory import Placement, build_call, clip_samples, wav_bytes
from postgres import postgres_bin, running_postgres
from processes import free_port, wait_ready

from asr_service.jobs.store import JobStore, NewJob

STARTED = re.compile(r"job ([0-9a-f]{32}): started")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (Debian package `postgresql`; `make test` installs it)")
    with running_postgres() as url:
        yield url


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asr_service", "serve"],
                env={**env, "ASR_PORT": str(self.port)},
                stdout=out,
                stderr=out,
            )

    def wait_ready(self) -> None:
        wait_ready(self.url)

    def started_jobs(self) -> list[str]:
        return STARTED.findall(self.log.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def wait_all(url: str, ids: list[str], seconds: float = 120) -> dict[str, dict]:
    deadline = time.monotonic() + seconds
    done: dict[str, dict] = {}
    while len(done) < len(ids):
        assert time.monotonic() < deadline, f"{len(done)} of {len(ids)} jobs done"
        for job_id in ids:
            if job_id not in done:
                job = httpx.get(f"{url}/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    done[job_id] = job
        time.sleep(0.2)
    return done


def test_the_store_claims_each_job_once_under_concurrency(postgres_url: str) -> None:
    """Two store clients racing for 20 jobs: each claimed exactly once (SKIP LOCKED plus compare-and-set)."""
    import concurrent.futures

    first, second = JobStore(postgres_url), JobStore(postgres_url)
    ids = {first.create(NewJob("batch", {}, "0" * 64, 1))[0].id for _ in range(20)}

    def drain(store: JobStore, owner: str) -> list[str]:
        claimed = []
        while (job := store.claim(owner, 30)) is not None:
            claimed.append(job.id)
        return claimed

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda n: drain((first, second)[n % 2], f"owner{n}"), range(4)))
    claimed = [job_id for run in runs for job_id in run]
    assert sorted(claimed) == sorted(ids), "every job claimed, none twice"
    first.close()
    second.close()


def test_two_replicas_split_the_jobs_and_one_takes_over_when_the_other_dies(
    postgres_url: str, tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "ASR_MODEL": str(tiny_glmasr_dir),
        "ASR_DTYPE": "float32",
        "ASR_CACHE_DIR": str(model_cache),
        "ASR_DATA_DIR": str(tmp_path / "shared-data"),
        "ASR_JOBS_DATABASE_URL": postgres_url,
        "ASR_JOB_LEASE_SECONDS": "3",
        "ASR_JOB_SLOTS": "2",
        "ASR_JOB_POLL_SECONDS": "0.2",
    }
    a, b = Replica(env, tmp_path / "a.log"), Replica(env, tmp_path / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        short = wav_bytes(clip_samples("zh_funasr_llamacpp_sample.wav"))
        ids = [
            httpx.post(f"{(a, b)[i % 2].url}/jobs", files={"file": (f"c{i}.wav", short)}).json()["id"]
            for i in range(12)
        ]
        jobs = wait_all(a.url, ids)
        assert all(job["status"] == "succeeded" and job["attempts"] == 1 for job in jobs.values())
        on_a, on_b = set(a.started_jobs()), set(b.started_jobs())
        print(f"replica A ran {len(on_a)} jobs, replica B {len(on_b)}")
        assert on_a and on_b, "both replicas must take work from the shared queue"
        assert not on_a & on_b and on_a | on_b == set(ids), "each job ran on one replica, once"

        call = wav_bytes(build_call([Placement(1 + 7 * i, "zh_funasr_llamacpp_sample.wav") for i in range(6)], 45))
        ids = [httpx.post(f"{a.url}/jobs", files={"file": (f"long{i}.wav", call)}).json()["id"] for i in range(6)]
        deadline = time.monotonic() + 60
        while not set(b.started_jobs()) & set(ids):
            assert time.monotonic() < deadline, "replica B never took one of the long jobs"
            time.sleep(0.05)
        b.process.send_signal(signal.SIGKILL)
        b.process.wait(timeout=30)
        taken_over = set(b.started_jobs()) & set(ids)
        jobs = wait_all(a.url, ids)
        assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
        assert any(jobs[job_id]["attempts"] == 2 for job_id in taken_over), "the dead replica's job was taken over"
        assert taken_over <= set(a.started_jobs())
    finally:
        a.stop()
        b.stop()
