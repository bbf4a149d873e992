"""Helpers for tests and scripts that start real services: a free loopback port, and waiting for readiness."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, seconds: float = 120) -> None:
    """Until `url`/readyz answers 200 (a service starting in another process loads its model first)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready within {seconds:.0f} s")


def start_service(env: dict[str, str], log: Path, seconds: float = 120) -> tuple[subprocess.Popen[bytes], str]:
    """`asr-service serve` in a process of its own on a free port, with `env`, its output appended to `log`; returns
    once it is ready, with its URL."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "asr_service", "serve"], env={**env, "ASR_PORT": str(port)}, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, seconds)
    except AssertionError:
        process.kill()
        raise AssertionError(f"the service did not start within {seconds:.0f} s; see {log}") from None
    return process, url
