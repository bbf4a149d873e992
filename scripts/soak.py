"""Load and soak through the real nginx: `python scripts/soak.py` (10 minutes at twice the measured capacity).

Starts `asr-service serve` (the embedded model unless `--model`) and nginx with deploy/nginx.conf in front of it, both
on loopback. First it measures capacity: requests per second a few concurrent callers get through. Then it sends
requests at `--factor` times that rate, open loop (arrivals do not wait for answers, as call-takers do not), split
over several nginx users, for `--seconds`. Every request must end in 200, or in 429/503 with Retry-After; none may
hang past the client timeout or vanish (a connection error). The service's resident memory, sampled every few
seconds, must not grow more than `--max-rss-growth` after the warm-up. Prints latency percentiles per status and a
summary line of JSON; exits 1 if a rule was broken. Bounded: `--max-requests` caps the requests sent.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from audio_factory import clip_samples, wav_bytes  # noqa: E402
from processes import free_port  # noqa: E402

from asr_service.proxy import running_nginx  # noqa: E402

USERS = {f"soak{i}": f"pw-{i}-soak" for i in range(4)}
ACCEPTED = {200}
SHED = {429, 503}


@dataclass
class Outcome:
    status: int | None
    """None: no answer (a timeout or a connection error)."""
    seconds: float
    retry_after: bool = False
    error: str | None = None


@dataclass
class Soak:
    outcomes: list[Outcome] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_request(client: httpx.AsyncClient, audio: bytes, user: str, timeout: float) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/asr", files={"file": ("call.wav", audio)}, auth=(user, USERS[user]), timeout=timeout
        )
    except httpx.TimeoutException:
        return Outcome(None, time.perf_counter() - started, error="timeout")
    except httpx.TransportError as e:
        return Outcome(None, time.perf_counter() - started, error=type(e).__name__)
    return Outcome(response.status_code, time.perf_counter() - started, "retry-after" in response.headers)


async def measure_capacity(client: httpx.AsyncClient, audio: bytes, seconds: float, callers: int) -> float:
    """Requests per second that `callers` back-to-back callers get answered with 200."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(user: str) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            outcome = await one_request(client, audio, user, 300)
            if outcome.status == 200:
                done += 1
            else:
                await asyncio.sleep(0.2)

    started = time.perf_counter()
    await asyncio.gather(*(caller(user) for user, _ in zip(USERS, range(callers), strict=False)))
    return done / (time.perf_counter() - started)


async def soak(
    client: httpx.AsyncClient, audio: bytes, rate: float, seconds: float, max_requests: int, pid: int, timeout: float
) -> Soak:
    result = Soak()
    users = list(USERS)
    tasks: list[asyncio.Task[Outcome]] = []

    async def sample_memory() -> None:
        while True:
            result.rss_mb.append(rss_mb(pid))
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample_memory())
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and len(tasks) < max_requests:
        user = users[len(tasks) % len(users)]
        tasks.append(asyncio.create_task(one_request(client, audio, user, timeout)))
        next_at = started + len(tasks) / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    result.outcomes = list(await asyncio.gather(*tasks))
    result.rss_mb.append(rss_mb(pid))
    sampler.cancel()
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-base", help="ASR_MODEL for the service")
    parser.add_argument("--seconds", type=float, default=600, help="length of the soak")
    parser.add_argument("--factor", type=float, default=2.0, help="offered load as a multiple of measured capacity")
    parser.add_argument("--calibrate-seconds", type=float, default=30)
    parser.add_argument("--callers", type=int, default=4, help="concurrent callers while measuring capacity")
    parser.add_argument("--clip", default="zh_funasr_llamacpp_sample.wav", help="shared clip sent by every request")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=300, help="client timeout: a request past it 'hung'")
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    args = parser.parse_args()

    audio = wav_bytes(clip_samples(args.clip))
    port = free_port()
    env = {**os.environ, "ASR_MODEL": args.model, "ASR_PORT": str(port), "ASR_HOST": "127.0.0.1"}
    log_path = Path(tempfile.mkdtemp(prefix="asr-soak-")) / "soak.log"
    log_path.parent.chmod(0o755)  # nginx's workers (an unprivileged user) read the site files inside
    with log_path.open("wb") as log:
        service = subprocess.Popen([sys.executable, "-m", "asr_service", "serve"], env=env, stdout=log, stderr=log)
        try:
            with running_nginx([f"127.0.0.1:{port}"], free_port(), USERS, log_path.parent / "nginx", log) as url:
                status = asyncio.run(run(args, url, audio, service.pid))
        finally:
            service.terminate()
            service.wait(timeout=180)
    print(f"service and nginx log: {log_path}")
    return status


async def run(args: argparse.Namespace, url: str, audio: bytes, pid: int) -> int:
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        for _ in range(1200):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
        else:
            raise SystemExit("the service did not become ready in 5 minutes; see the log")
        capacity = await measure_capacity(client, audio, args.calibrate_seconds, args.callers)
        rate = args.factor * capacity
        print(f"capacity {capacity:.2f} requests/s; soaking at {rate:.2f}/s for {args.seconds:.0f} s", flush=True)
        result = await soak(client, audio, rate, args.seconds, args.max_requests, pid, args.timeout)

    statuses = Counter(str(o.status) if o.status is not None else o.error for o in result.outcomes)
    shed_without_retry = sum(1 for o in result.outcomes if o.status in SHED and not o.retry_after)
    unexpected = sum(1 for o in result.outcomes if o.status is not None and o.status not in ACCEPTED | SHED)
    lost = sum(1 for o in result.outcomes if o.status is None)
    ok_seconds = [o.seconds for o in result.outcomes if o.status == 200]
    warm = max(result.rss_mb[: max(1, len(result.rss_mb) // 4)])  # after the first quarter's ramp-up
    end = statistics.mean(result.rss_mb[-max(1, len(result.rss_mb) // 10) :])
    growth = (end - warm) / warm if warm else 0.0
    for status in sorted(statuses):
        seconds = [o.seconds for o in result.outcomes if (str(o.status) if o.status is not None else o.error) == status]
        print(
            f"  {status:>12}: {statuses[status]:6d}  p50 {percentile(seconds, 0.5):6.2f} s  "
            f"p95 {percentile(seconds, 0.95):6.2f} s  p99 {percentile(seconds, 0.99):6.2f} s"
        )
    summary = {
        "capacity_rps": round(capacity, 2),
        "offered_rps": round(len(result.outcomes) / args.seconds, 2),
        "requests": len(result.outcomes),
        "statuses": dict(statuses),
        "ok_p50_s": round(percentile(ok_seconds, 0.5), 2),
        "ok_p95_s": round(percentile(ok_seconds, 0.95), 2),
        "ok_p99_s": round(percentile(ok_seconds, 0.99), 2),
        "shed_without_retry_after": shed_without_retry,
        "unexpected_status": unexpected,
        "hung_or_vanished": lost,
        "rss_warm_mb": round(warm, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(max(result.rss_mb), 1),
        "rss_growth": round(growth, 3),
    }
    print(json.dumps(summary))
    broken = shed_without_retry or unexpected or lost or growth > args.max_rss_growth or not ok_seconds
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
