"""Uploaded audio of jobs, stored under `ASR_DATA_DIR/audio/` until its job ends (or for good with
`ASR_KEEP_AUDIO`). Written atomically and fsynced before the 202, so a job the client knows of always has its audio."""

from pathlib import Path

from asr_service.atomic import write_atomically
from asr_service.retention import STORED_FOLDERS

AUDIO_FOLDER = STORED_FOLDERS[0]


class AudioFiles:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / AUDIO_FOLDER
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not job_id.isalnum():  # ids are ours (hex), never a caller's path
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id[:2] / job_id

    def write(self, job_id: str, data: bytes) -> None:
        write_atomically(self.path(job_id), data)

    def read(self, job_id: str) -> bytes:
        return self.path(job_id).read_bytes()

    def delete(self, job_id: str) -> None:
        self.path(job_id).unlink(missing_ok=True)
