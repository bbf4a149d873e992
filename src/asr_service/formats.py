"""Transcript renderings: JSON, plain text, SubRip and WebVTT subtitles (speaker roles in split mode)."""

from fastapi import Response
from fastapi.responses import JSONResponse, PlainTextResponse

from asr_service.schemas import ResponseFormat, Segment, TranscriptionResponse


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(segments: list[Segment]) -> str:
    cues = []
    for number, s in enumerate(segments, start=1):
        text = f"{s.speaker}: {s.text}" if s.speaker else s.text
        cues.append(f"{number}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{text}\n")
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    cues = ["WEBVTT\n"]
    for s in segments:
        text = f"<v {s.speaker}>{s.text}" if s.speaker else s.text
        cues.append(f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{text}\n")
    return "\n".join(cues)


MEDIA_TYPES: dict[ResponseFormat, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}
FILE_EXTENSIONS: dict[ResponseFormat, str] = {"json": "json", "text": "txt", "srt": "srt", "vtt": "vtt"}


def parse_formats(text: str) -> list[ResponseFormat]:
    """`json,txt,srt` as written in a setting or on the command line (`txt` and `text` are the same)."""
    names = [name.strip().lower().replace("txt", "text") for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FILE_EXTENSIONS))
    if unknown or not names:
        raise ValueError(f"unknown format(s) {unknown or text!r}: use json, txt, srt, vtt")
    return list(dict.fromkeys(names))  # type: ignore[arg-type]


def transcript_as(result: TranscriptionResponse, response_format: ResponseFormat) -> str:
    """The transcript as a document in one of the formats (answers and saved files alike)."""
    if response_format == "text":
        return result.text + "\n"
    if response_format == "srt":
        return to_srt(result.segments)
    if response_format == "vtt":
        return to_vtt(result.segments)
    return result.model_dump_json()


def render_transcript(result: TranscriptionResponse, response_format: ResponseFormat) -> Response:
    if response_format == "json":
        return JSONResponse(result.model_dump(mode="json"))
    return PlainTextResponse(transcript_as(result, response_format), media_type=MEDIA_TYPES[response_format])
