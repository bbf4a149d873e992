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


def render_transcript(result: TranscriptionResponse, response_format: ResponseFormat) -> Response:
    if response_format == "text":
        return PlainTextResponse(result.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(result.segments), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(result.segments), media_type="text/vtt")
    return JSONResponse(result.model_dump(mode="json"))
