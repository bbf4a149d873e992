"""`asr-service batch INPUT_DIR --out OUTPUT_DIR`: a day's recordings in one command.

Finds every recording under INPUT_DIR (by content as well as by name), transcribes each through a running service
(`--url`, via /jobs so long calls survive a dropped connection) or in this process, a few at a time, and writes one
result per recording in each format (mirroring INPUT_DIR's folders) plus `ledger.csv`. Resumable: every finished
file is appended to `OUTPUT_DIR/.batch-state.jsonl` at once (keyed by the audio's SHA-256, so a renamed file is not
done twice); a rerun skips what is done and retries what failed, and a run killed halfway loses only the files in
flight.
"""

import asyncio
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import httpx
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from asr_service.atomic import write_atomically
from asr_service.audio.decode import ALLOWED_DEMUXERS
from asr_service.errors import AsrError
from asr_service.formats import FILE_EXTENSIONS, transcript_as
from asr_service.hotline.ledger import TICKET_COLUMNS, ticket_columns, write_workbook
from asr_service.schemas import ResponseFormat, TranscriptionOptions, TranscriptionResponse

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset(
    {".wav", ".w64", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".amr", ".awb", ".m4a", ".mp4", ".3gp", ".aac"}
    | {".aif", ".aiff", ".caf", ".au", ".wma", ".asf", ".mka", ".webm", ".wv"}
)
STATE_FILE = ".batch-state.jsonl"
LEDGER_FILE = "ledger.csv"
WORKBOOK_FILE = "ledger.xlsx"
CALL_TIMEZONE = datetime.timezone(datetime.timedelta(hours=8))
"""Call recorders name files in local (Beijing) time."""
_NAME_TIME = re.compile(r"(20\d\d)[-_.]?([01]\d)[-_.]?([0-3]\d)[-_.T ]?([0-2]\d)[-_.:]?([0-5]\d)(?:[-_.:]?([0-5]\d))?")
LEDGER_COLUMNS = ["file", "sha256", "duration", "language", "channels", "confidence", "needs_review", "text", "error"]

Transcribe = Callable[[Path, bytes, str], Awaitable[TranscriptionResponse]]
"""(path, audio, sha256) -> transcript; raises AsrError (or BatchError) for a file that cannot be transcribed."""


class BatchError(Exception):
    """A file the service refused or a job that failed: reported, and the run goes on."""


@dataclasses.dataclass
class FileOutcome:
    file: str
    sha256: str
    ok: bool
    duration: float = 0.0
    error: str | None = None
    row: dict[str, Any] = dataclasses.field(default_factory=dict)


def looks_like_audio(path: Path) -> bool:
    """An audio file by name, or by content: a container our decoder accepts holding an audio stream."""
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return True
    try:
        with path.open("rb") as file, av.open(file, options={"format_whitelist": ",".join(ALLOWED_DEMUXERS)}) as box:
            return any(stream.type == "audio" for stream in box.streams)
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return False


def find_recordings(root: Path, out: Path) -> list[Path]:
    skip = out.resolve()
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.startswith(".")
        and skip not in path.resolve().parents
        and looks_like_audio(path)
    )


def load_state(out: Path) -> dict[str, FileOutcome]:
    """The last outcome per SHA-256 (a later line wins: a retried failure that succeeded is done)."""
    state: dict[str, FileOutcome] = {}
    path = out / STATE_FILE
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                outcome = FileOutcome(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut by a crash
            state[outcome.sha256] = outcome
    return state


def call_time_of(path: Path) -> datetime.datetime:
    """When the call was made: a date-time in the file name (20261122_081502.wav, 2026-11-22 08-15.mp3), as call
    recorders name files, else the file's modification time."""
    found = _NAME_TIME.search(path.name)
    if found:
        try:
            return datetime.datetime(*(int(part or 0) for part in found.groups()), tzinfo=CALL_TIMEZONE)
        except ValueError:
            pass
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=CALL_TIMEZONE)


def ledger_row(file: str, sha256: str, result: TranscriptionResponse | None, error: str | None) -> dict[str, Any]:
    ticket = ticket_columns(result.ticket) if result is not None and result.ticket is not None else {}
    return ticket | {
        "file": file,
        "sha256": sha256,
        "duration": round(result.duration, 2) if result else "",
        "language": (result.language or "") if result else "",
        "channels": result.channels if result else "",
        "confidence": "" if result is None or result.confidence is None else round(result.confidence, 3),
        "needs_review": result.needs_review if result else "",
        "text": result.text if result else "",
        "error": error or "",
    }


def write_ledger(out: Path, outcomes: list[FileOutcome], analyzed: bool = False) -> None:
    """UTF-8 with a BOM, so Excel opens the Chinese text correctly; one row per recording, in file order. Analysed
    runs add the ticket's columns, and `ledger.xlsx`."""
    columns = LEDGER_COLUMNS + TICKET_COLUMNS if analyzed else LEDGER_COLUMNS
    rows = [outcome.row for outcome in sorted(outcomes, key=lambda o: o.file)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(out / LEDGER_FILE, ("\ufeff" + buffer.getvalue()).encode("utf-8"))
    if analyzed:
        write_workbook(out / WORKBOOK_FILE, columns, rows)


class BatchRun:
    def __init__(
        self,
        root: Path,
        out: Path,
        formats: list[ResponseFormat],
        transcribe: Transcribe,
        concurrency: int,
        analyzed: bool = False,
    ):
        self.analyzed = analyzed
        self.root = root
        self.out = out
        self.formats = formats
        self.transcribe = transcribe
        self.concurrency = concurrency
        self.state = load_state(out)
        self._state_file = None

    async def run(self, show_progress: bool) -> tuple[list[FileOutcome], dict[str, Any]]:
        started = time.perf_counter()
        files = await asyncio.to_thread(find_recordings, self.root, self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        digests = await asyncio.gather(*(asyncio.to_thread(_sha256, path) for path in files))
        todo: list[tuple[Path, str]] = []
        outcomes: dict[str, FileOutcome] = {}
        skipped = 0
        for path, digest in zip(files, digests, strict=True):
            previous = self.state.get(digest)
            if previous is not None and previous.ok:
                skipped += 1
                outcomes[digest] = previous
            elif digest not in {d for _, d in todo}:
                todo.append((path, digest))
        semaphore = asyncio.Semaphore(self.concurrency)
        done_seconds = 0.0
        failures = 0
        with (self.out / STATE_FILE).open("a", encoding="utf-8") as state_file, _progress(show_progress) as progress:
            task = progress.add_task("transcribing", total=len(todo), hours=0.0, failed=0) if progress else None

            async def one(path: Path, digest: str) -> None:
                nonlocal done_seconds, failures
                async with semaphore:
                    outcome = await self._one(path, digest)
                state_file.write(json.dumps(dataclasses.asdict(outcome), ensure_ascii=False) + "\n")
                state_file.flush()
                outcomes[digest] = outcome
                done_seconds += outcome.duration
                failures += not outcome.ok
                if progress is not None and task is not None:
                    progress.update(task, advance=1, hours=done_seconds / 3600, failed=failures)
                else:
                    status = "ok" if outcome.ok else f"FAILED ({outcome.error})"
                    print(f"{len(outcomes) - skipped}/{len(todo)} {outcome.file}: {status}", flush=True)

            await asyncio.gather(*(one(path, digest) for path, digest in todo))
        await asyncio.to_thread(write_ledger, self.out, list(outcomes.values()), self.analyzed)
        wall = time.perf_counter() - started
        audio_seconds = sum(o.duration for o in outcomes.values() if o.ok and o.sha256 in {d for _, d in todo})
        summary = {
            "files": len(files),
            "done": sum(1 for _, d in todo if outcomes[d].ok),
            "skipped": skipped,
            "failed": [{"file": o.file, "error": o.error} for o in outcomes.values() if not o.ok],
            "audio_hours": round(audio_seconds / 3600, 3),
            "wall_seconds": round(wall, 1),
            "real_time_factor": round(audio_seconds / wall, 2) if wall else None,
        }
        return list(outcomes.values()), summary

    async def _one(self, path: Path, digest: str) -> FileOutcome:
        relative = path.relative_to(self.root).as_posix()
        try:
            data = await asyncio.to_thread(path.read_bytes)
            result = await self.transcribe(path, data, digest)
        except (AsrError, BatchError, OSError, httpx.HTTPError) as e:
            message = getattr(e, "message", None) or str(e) or type(e).__name__
            return FileOutcome(relative, digest, False, error=message, row=ledger_row(relative, digest, None, message))
        for response_format in self.formats:
            target = self.out / Path(relative).with_suffix(f".{FILE_EXTENSIONS[response_format]}")
            await asyncio.to_thread(write_atomically, target, transcript_as(result, response_format).encode("utf-8"))
        return FileOutcome(relative, digest, True, result.duration, row=ledger_row(relative, digest, result, None))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _progress(show: bool) -> Progress | _NoProgress:
    if not show:
        return _NoProgress()
    return Progress(
        TextColumn("{task.completed}/{task.total} files"),
        BarColumn(),
        TextColumn("{task.fields[hours]:.2f} h audio"),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def remote_transcriber(
    url: str, auth: tuple[str, str] | None, options: TranscriptionOptions, poll_seconds: float = 1.0
) -> tuple[Transcribe, Callable[[], Awaitable[None]]]:
    """Through a running service's /jobs (behind nginx with basic auth, if given). The Idempotency-Key is the file's
    SHA-256 with the options, so a rerun after a dropped connection finds its job instead of queueing another."""
    client = httpx.AsyncClient(base_url=url, auth=auth, timeout=300)
    fields = {k: v for k, v in options.model_dump(exclude={"response_format"}).items() if v not in (None, [], "auto")}
    if options.hotwords:
        fields["hotwords"] = ",".join(options.hotwords)
    fields = {k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}

    async def transcribe(path: Path, data: bytes, digest: str) -> TranscriptionResponse:
        key = hashlib.sha256(f"{digest}:{json.dumps(fields, sort_keys=True)}".encode()).hexdigest()
        response = await _with_retries(
            lambda: client.post(
                "/jobs",
                files={"file": (path.name, data)},
                data=fields | ({"call_time": call_time_of(path).isoformat()} if options.analyze else {}),
                headers={"Idempotency-Key": key},
            )
        )
        if response.status_code != 202:
            raise BatchError(_error_text(response))
        job_id = response.json()["id"]
        while True:
            job = await _with_retries(lambda: client.get(f"/jobs/{job_id}"))
            body = job.json()
            if body.get("status") == "succeeded":
                return TranscriptionResponse.model_validate(body["result"])
            if body.get("status") in ("failed", "cancelled") or job.status_code != 200:
                error = body.get("error") or {}
                raise BatchError(error.get("message") or f"job {body.get('status', job.status_code)}")
            await asyncio.sleep(poll_seconds)

    return transcribe, client.aclose


async def _with_retries(call: Callable[[], Awaitable[httpx.Response]], attempts: int = 8) -> httpx.Response:
    """Retry what the service or nginx asks to retry (429, 503 with Retry-After) and dropped connections."""
    for attempt in range(attempts):
        try:
            response = await call()
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(min(30, 2**attempt))
            continue
        if response.status_code in (429, 503) and attempt < attempts - 1:
            await asyncio.sleep(float(response.headers.get("retry-after", 2**attempt)))
            continue
        return response
    raise AssertionError("unreachable")


def _error_text(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(
        f"{summary['done']} done, {summary['skipped']} skipped (done before), {len(summary['failed'])} failed; "
        f"{summary['audio_hours']:.3f} h of audio in {summary['wall_seconds']:.0f} s "
        f"({summary['real_time_factor']}x real time). Results and ledger.csv in {out}",
        flush=True,
    )
    for failure in summary["failed"]:
        print(f"  failed: {failure['file']}: {failure['error']}", flush=True)
    print(json.dumps(summary, ensure_ascii=False), flush=True)


def progress_wanted() -> bool:
    return sys.stdout.isatty()
