"""POST /v1/audio/transcriptions, answering as OpenAI's API does, so existing clients work unchanged.

It shares the queue and worker with /asr. `model` is accepted and ignored (the service runs one model); `prompt`
becomes hotwords; `temperature` is accepted and ignored (decoding is greedy, which is what temperature 0 means).
"""

import math
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from asr_service.api.upload import AUDIO_ERROR_RESPONSES, multipart_schema, read_audio_upload, transcribe_upload
from asr_service.deps import SettingsDep, TranscriberDep
from asr_service.errors import CLIENT_CLOSED_REQUEST
from asr_service.formats import render_transcript
from asr_service.schemas import TranscriptionOptions, TranscriptionResponse, split_hotwords

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

LANGUAGE_NAMES = {"zh": "chinese", "yue": "cantonese", "en": "english"}
"""OpenAI's verbose_json names the language in English words."""


class OpenAITranscriptionForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = "whisper-1"
    language: Literal["zh", "yue", "en"] | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "srt", "vtt", "verbose_json"] = "json"
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("language", "prompt", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("prompt")
    @classmethod
    def _prompt_is_hotwords(cls, value: str | None) -> str | None:
        if value is not None:
            split_hotwords(value)  # the prompt becomes hotwords: the same bounds and checks
        return value


def verbose_json(result: TranscriptionResponse) -> dict[str, object]:
    return {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get(result.language or "", result.language or ""),
        "duration": result.duration,
        "text": result.text,
        "segments": [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": round(math.log(max(s.confidence, 1e-6)), 4),
                "compression_ratio": 1.0,
                "no_speech_prob": 0.0,
            }
            for s in result.segments
        ],
    }


@router.post(
    "/audio/transcriptions",
    summary="OpenAI-compatible transcription",
    description="Multipart `file`, `model`, `language`, `prompt`, `response_format` "
    "(`json`, `text`, `srt`, `vtt`, `verbose_json`), `temperature`.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": multipart_schema(OpenAITranscriptionForm),
                    "example": {"file": "(binary call.wav)", "model": "whisper-1", "language": "zh"},
                }
            },
        }
    },
    responses=AUDIO_ERROR_RESPONSES,
)
async def create_transcription(request: Request, transcriber: TranscriberDep, settings: SettingsDep) -> Response:
    upload = await read_audio_upload(request, settings, OpenAITranscriptionForm)
    form = upload.options
    options = TranscriptionOptions(
        language=form.language or "auto",
        hotwords=split_hotwords(form.prompt) if form.prompt else [],
        response_format="json" if form.response_format == "verbose_json" else form.response_format,
    )
    result = await transcribe_upload(request, transcriber, upload.data, options, upload.filename)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if form.response_format == "verbose_json":
        return JSONResponse(verbose_json(result))
    if form.response_format == "json":
        return JSONResponse({"text": result.text})
    return render_transcript(result, options.response_format)
