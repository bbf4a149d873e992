"""Saved transcripts: with `ASR_OUTPUT_DIR` set, every finished transcription (jobs and /asr alike) is written there
as `YYYY-MM-DD/<original-file-stem>_<id>.<ext>`, one file per format in `ASR_OUTPUT_FORMATS`, each written to a
temporary file and renamed, so a crash never leaves half a file and an operator can browse it by day."""

import datetime
import re
from pathlib import Path

from asr_service.atomic import write_atomically
from asr_service.formats import FILE_EXTENSIONS, transcript_as
from asr_service.schemas import ResponseFormat, TranscriptionResponse

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_stem(filename: str | None) -> str:
    """The file name's stem, reduced to letters (CJK included), digits, dots and dashes: a caller's file name never
    becomes a path (no separators, no `..`, no hidden files)."""
    stem = Path((filename or "").replace("\\", "/")).name.rsplit(".", 1)[0] if filename else ""
    cleaned = _UNSAFE.sub("_", stem).strip("._")[:80]
    return cleaned or "recording"


class OutputFolder:
    def __init__(self, root: Path, formats: list[ResponseFormat]) -> None:
        self.root = root
        self.formats = formats

    def save(
        self, result: TranscriptionResponse, filename: str | None, when: datetime.datetime | None = None
    ) -> list[Path]:
        day = (when or datetime.datetime.now()).strftime("%Y-%m-%d")
        folder = self.root / day
        base = f"{safe_stem(filename)}_{result.id}"
        written = []
        for response_format in self.formats:
            target = folder / f"{base}.{FILE_EXTENSIONS[response_format]}"
            write_atomically(target, transcript_as(result, response_format).encode())
            written.append(target)
        return written
