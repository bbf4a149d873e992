"""Command line: `serve` runs the service, `proxy` puts nginx in front of it, `transcribe FILE` prints a transcript."""

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

import uvicorn

from asr_service.app import create_app
from asr_service.config import Settings
from asr_service.proxy import running_nginx
from asr_service.schemas import TranscriptionOptions


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=30,
        access_log=False,  # asr_service.access logs every request, with the authenticated user
    )
    return 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # unwinds the context managers, so nginx is stopped too


def _proxy(settings: Settings) -> int:
    """nginx with deploy/nginx.conf in front of the local service, until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    folder = Path(".cache/proxy").resolve()
    upstream = f"{settings.host}:{settings.port}"
    users = {settings.proxy_user: settings.proxy_password}
    with running_nginx([upstream], settings.proxy_port, users, folder) as url:
        print(f"nginx on {url} -> http://{settings.host}:{settings.port} (user {settings.proxy_user!r})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


async def _transcribe_files(settings: Settings, files: list[Path], language: str) -> int:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        for file in files:
            result = await state["transcriber"].transcribe(file.read_bytes(), TranscriptionOptions(language=language))
            print(json.dumps(result.model_dump(), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service (settings from ASR_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    commands.add_parser("proxy", help="run nginx (deploy/nginx.conf) in front of the local service")
    transcribe = commands.add_parser("transcribe", help="transcribe files and print one JSON line each")
    transcribe.add_argument("files", nargs="+", type=Path)
    transcribe.add_argument("--language", default="auto", choices=["auto", "zh", "yue", "en"])
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "proxy":
        return _proxy(settings)
    return asyncio.run(_transcribe_files(settings, args.files, args.language))


if __name__ == "__main__":
    sys.exit(main())
