"""Run the real nginx with deploy/nginx.conf in front of a local service (`make proxy`, the nginx tests).

deploy/nginx.conf is copied unchanged; only the site files it includes (upstream list, listen address, htpasswd)
are generated, so developers and tests run the configuration production runs.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")


def hash_password(password: str) -> str:
    """An apr1 hash, which nginx verifies itself on every platform."""
    result = subprocess.run(
        ["openssl", "passwd", "-apr1", "-stdin"], input=password, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def write_site(folder: Path, upstreams: list[str], listen: str, users: dict[str, str]) -> Path:
    """Lay out nginx.conf and its asr/ includes in `folder`; returns the config path."""
    site = folder / "asr"
    site.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    shutil.copyfile(DEPLOY_DIR / "nginx.conf", config)
    shutil.copyfile(DEPLOY_DIR / "asr" / "mime.types", site / "mime.types")
    servers = "".join(f"    server {address} max_fails=3 fail_timeout=10s;\n" for address in upstreams)
    (site / "upstream.conf").write_text(f"upstream asr_backend {{\n    least_conn;\n{servers}    keepalive 32;\n}}\n")
    (site / "listen.conf").write_text(f"listen {listen};\n")
    (site / "htpasswd").write_text("".join(f"{user}:{hash_password(pw)}\n" for user, pw in users.items()))
    for path in (folder, site, *site.iterdir(), config):
        path.chmod(0o755 if path.is_dir() else 0o644)  # nginx workers run as an unprivileged user
    return config


def _wait_for_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start listening")


@contextlib.contextmanager
def running_nginx(
    upstreams: list[str], port: int, users: dict[str, str], folder: Path | None = None, log: IO[bytes] | None = None
) -> Iterator[str]:
    """Start nginx on 127.0.0.1:`port` in front of `upstreams`; yields its base URL and stops it afterwards. Its
    access and error log go to `log` (default: this process's output)."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asr-nginx-")))
        config = write_site(folder, upstreams, f"127.0.0.1:{port}", users)
        nginx = find_nginx()
        subprocess.run([nginx, "-t", "-q", "-p", str(folder), "-c", str(config)], check=True)
        process = subprocess.Popen(
            [nginx, "-p", str(folder), "-c", str(config), "-g", "daemon off;"], stdout=log, stderr=log
        )
        try:
            _wait_for_port("127.0.0.1", port, process, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)
