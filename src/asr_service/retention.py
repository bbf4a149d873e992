"""Retention: stored audio, results and corrections are deleted once older than `ASR_RETENTION_DAYS`.

Citizens' recordings must not outlive their purpose. Everything the service stores lives in these folders of
`ASR_DATA_DIR`; a file's age is its modification time. The audit log is not purged here: it is the record of who
accessed what, and has its own rotation.
"""

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STORED_FOLDERS = ("audio", "results", "corrections")
SWEEP_INTERVAL_SECONDS = 3600


@dataclass(frozen=True)
class PurgeReport:
    files: int
    bytes: int


def purge_expired(
    data_dir: Path, max_age_days: float, now: float | None = None, extra_folders: Sequence[Path] = ()
) -> PurgeReport:
    """Delete files under the stored folders (and `extra_folders`, such as the output folder) older than
    `max_age_days`, then the folders left empty."""
    cutoff = (time.time() if now is None else now) - max_age_days * 86400
    files = size = 0
    for folder in [*(data_dir / name for name in STORED_FOLDERS), *extra_folders]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*"), reverse=True):  # children before their folders
            if path.is_symlink() or path.is_file():
                stat = path.lstat()
                if stat.st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    files += 1
                    size += stat.st_size
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return PurgeReport(files, size)


async def sweep_forever(
    data_dir: Path,
    max_age_days: float,
    extra_folders: Sequence[Path] = (),
    purge_records: Callable[[datetime.datetime], int] | None = None,
    interval_seconds: float = SWEEP_INTERVAL_SECONDS,
) -> None:
    """Purge at once, then every `interval_seconds`, until cancelled (by the lifespan at shutdown). `purge_records`
    deletes stored records (finished jobs with their results, filed tickets with the caller's words) from before the
    cutoff it is given."""
    while True:
        try:
            if purge_records is not None:
                cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=max_age_days)
                if removed := await asyncio.to_thread(purge_records, cutoff):
                    logger.info(
                        "retention: deleted %d record(s) (jobs, tickets) older than %g days", removed, max_age_days
                    )
            report = await asyncio.to_thread(purge_expired, data_dir, max_age_days, None, extra_folders)
        except OSError:
            logger.exception("retention sweep of %s failed", data_dir)
        else:
            if report.files:
                logger.info(
                    "retention: deleted %d file(s), %d bytes, older than %g days",
                    report.files,
                    report.bytes,
                    max_age_days,
                )
        await asyncio.sleep(interval_seconds)
