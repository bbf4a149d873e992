"""Command line: `asr-service serve` runs the HTTP service; `asr-service transcribe FILE` prints a transcript."""

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import uvicorn

from asr_service.app import create_app
from asr_service.config import Settings
from asr_service.schemas import TranscriptionOptions


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=30,
    )
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
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies whose X-Forwarded-* to trust")
    transcribe = commands.add_parser("transcribe", help="transcribe files and print one JSON line each")
    transcribe.add_argument("files", nargs="+", type=Path)
    transcribe.add_argument("--language", default="auto", choices=["auto", "zh", "yue", "en"])
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(settings, args)
    return asyncio.run(_transcribe_files(settings, args.files, args.language))


if __name__ == "__main__":
    sys.exit(main())
