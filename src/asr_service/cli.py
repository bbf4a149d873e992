"""Command line: `serve` runs the service, `proxy` puts nginx in front of it, `transcribe FILE` prints a transcript."""

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from asr_service.app import create_app
from asr_service.batch import BatchRun, Transcribe, call_time_of, print_summary, progress_wanted, remote_transcriber
from asr_service.config import Settings
from asr_service.errors import AsrError, error_body
from asr_service.formats import parse_formats
from asr_service.hotline.config import load_config
from asr_service.proxy import running_nginx
from asr_service.schemas import ResponseFormat, TranscriptionOptions, TranscriptionResponse
from asr_service.server import run_service
from asr_service.transcription import Transcriber


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
                line = {"file": str(file), **result.model_dump(mode="json")}
            print(json.dumps(line, ensure_ascii=False), flush=True)
    if failed:
        print(f"{failed} of {len(files)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


async def _batch(settings: Settings, args: argparse.Namespace) -> int:
    """`asr-service batch`: through a service's /jobs with --url, else in this process."""
    options = TranscriptionOptions(
        language=args.language, channels=args.channels, hotwords=args.hotwords, analyze=args.analyze
    )
    formats = parse_formats(args.formats)
    if args.url:
        password = args.password or os.environ.get("ASR_BATCH_PASSWORD")
        auth = (args.user, password or "") if args.user else None
        transcribe, close = remote_transcriber(args.url.rstrip("/"), auth, options)
        try:
            summary = await _run_batch(args, formats, transcribe)
        finally:
            await close()
    else:
        app = create_app(settings)
        async with app.router.lifespan_context(app) as state:
            transcriber: Transcriber = state["transcriber"]

            async def transcribe(path: Path, data: bytes, digest: str) -> TranscriptionResponse:
                call_time = call_time_of(path) if options.analyze else None
                call_id = path.relative_to(args.input).as_posix()
                return await transcriber.transcribe(
                    data, options, priority="batch", call_id=call_id, call_time=call_time
                )

            summary = await _run_batch(args, formats, transcribe)
    print_summary(summary, args.out)
    return 1 if summary["failed"] else 0


async def _run_batch(args: argparse.Namespace, formats: list[ResponseFormat], transcribe: Transcribe) -> dict[str, Any]:
    if not args.input.is_dir():
        raise SystemExit(f"{args.input} is not a folder")
    run = BatchRun(args.input, args.out, formats, transcribe, args.concurrency, analyzed=args.analyze)
    _, summary = await run.run(progress_wanted())
    return summary


def _report(args: argparse.Namespace) -> int:
    from asr_service.hotline.ledger import read_ledger
    from asr_service.hotline.report import NoCjkFontError, write_report

    try:
        rows = read_ledger(args.ledger)
        path = write_report(rows, args.out, args.start, args.end)
    except (OSError, UnicodeDecodeError, NoCjkFontError) as e:
        print(f"cannot write the report: {e}", file=sys.stderr)
        return 1
    print(f"report for {len(rows)} ledger rows written to {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from asr_service.hotline.learning import CategoryModel, TrainingDataError, read_corrected_tickets

    try:
        texts, categories = read_corrected_tickets(args.corrections)
        model = CategoryModel.fit(texts, categories, load_config(os.environ.get("ASR_HOTLINE_CONFIG")))
    except (TrainingDataError, OSError) as e:
        print(f"cannot train: {e}", file=sys.stderr)
        return 1
    model.save(args.out)
    print(f"trained on {len(texts)} corrected tickets ({len(set(categories))} categories); saved to {args.out}")
    return 0


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
    batch = commands.add_parser("batch", help="transcribe every recording under a folder (resumable; ledger.csv)")
    batch.add_argument("input", type=Path, help="folder of recordings (searched recursively)")
    batch.add_argument("--out", type=Path, required=True, help="where results, ledger.csv and the run state go")
    batch.add_argument("--url", help="a running service (e.g. nginx: http://host:8080); default: in this process")
    batch.add_argument("--user", help="basic-auth user for --url")
    batch.add_argument("--password", help="basic-auth password (or ASR_BATCH_PASSWORD)")
    batch.add_argument("--concurrency", type=int, default=4, help="recordings in flight at once")
    batch.add_argument("--language", default="auto", choices=["auto", "zh", "yue", "en"])
    batch.add_argument("--channels", default="auto", choices=["auto", "mix", "split"])
    batch.add_argument("--hotwords", default="", help="comma-separated names and terms")
    batch.add_argument("--formats", default="json,txt", help="any of json,txt,srt,vtt")
    batch.add_argument(
        "--analyze", action="store_true", help="file each call as a hotline ticket: ticket columns and ledger.xlsx"
    )
    report = commands.add_parser("report", help="the weekly report (one HTML file) from a batch run's ledger.csv")
    report.add_argument("ledger", type=Path)
    report.add_argument("--from", dest="start", type=datetime.date.fromisoformat, help="first day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=datetime.date.fromisoformat, help="last day (default: the last call)")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    hotline = commands.add_parser("hotline", help="hotline analysis tools")
    hotline_commands = hotline.add_subparsers(dest="hotline_command", required=True)
    train = hotline_commands.add_parser("train", help="fit the category classifier on corrected tickets")
    train.add_argument("corrections", type=Path, help="an edited ledger.csv / ledger.xlsx, or corrections as JSONL")
    train.add_argument("--out", type=Path, required=True, help="model folder (then set ASR_HOTLINE_MODEL to it)")
    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "hotline":
        return _train(args)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "proxy":
        return _proxy(settings, start_service=not args.no_service)
    if args.command == "batch":
        return asyncio.run(_batch(settings, args))
    return asyncio.run(_transcribe_files(settings, args.files, args.language))


if __name__ == "__main__":
    sys.exit(main())
