"""Command line: `serve` runs the service, `proxy` puts nginx in front of it, `transcribe FILE` prints a transcript."""

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

from asr_service.app import create_app
from asr_service.config import Settings
from asr_service.errors import AsrError, error_body
from asr_service.proxy import running_nginx
from asr_service.schemas import TranscriptionOptions
from asr_service.server import run_service


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    run_service(settings, args.host or settings.host, args.port or settings.port)
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # unwinds the context managers, so nginx is stopped too


def _proxy(settings: Settings, start_service: bool) -> int:
    """nginx with deploy/nginx.conf in front of the service (started here too, unless it runs already), until
    Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    folder = Path(".cache/proxy").resolve()
    upstream = f"{settings.host}:{settings.port}"
    users = {settings.proxy_user: settings.proxy_password}
    with contextlib.ExitStack() as stack:
        if start_service:
            service = subprocess.Popen([sys.executable, "-m", "asr_service", "serve"])
            stack.callback(_stop_process, service)
            print(f"service starting on http://{upstream} (pid {service.pid})", flush=True)
        url = stack.enter_context(running_nginx([upstream], settings.proxy_port, users, folder))
        print(f"nginx on {url} -> http://{upstream} (user {settings.proxy_user!r})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


async def _transcribe_files(settings: Settings, files: list[Path], language: str) -> int:
    """One JSON line per file, the transcript or the file's error; exit status 1 when any file failed."""
    app = create_app(settings)
    failed = 0
    async with app.router.lifespan_context(app) as state:
        for file in files:
            try:
                result = await state["transcriber"].transcribe(
                    file.read_bytes(), TranscriptionOptions(language=language)
                )
            except OSError as e:
                failed += 1
                line = {"file": str(file), **error_body("file_not_readable", f"{e.strerror or e}: {file}")}
            except AsrError as e:
                failed += 1
                line = {"file": str(file), **error_body(e.code, e.message)}
            else:
                line = {"file": str(file), **result.model_dump()}
            print(json.dumps(line, ensure_ascii=False), flush=True)
    if failed:
        print(f"{failed} of {len(files)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (settings from ASR_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    proxy = commands.add_parser("proxy", help="run the service and nginx (deploy/nginx.conf) in front of it")
    proxy.add_argument(
        "--no-service", action="store_true", help="do not start the service: it already runs on ASR_HOST:ASR_PORT"
    )
    transcribe = commands.add_parser("transcribe", help="transcribe files and print one JSON line each")
    transcribe.add_argument("files", nargs="+", type=Path)
    transcribe.add_argument("--language", default="auto", choices=["auto", "zh", "yue", "en"])
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "proxy":
        return _proxy(settings, start_service=not args.no_service)
    return asyncio.run(_transcribe_files(settings, args.files, args.language))


if __name__ == "__main__":
    sys.exit(main())
