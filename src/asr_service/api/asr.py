"""POST /asr: one recording in, one transcript out."""

import asyncio

from fastapi import APIRouter, Request, Response

from asr_service.api.upload import read_audio_upload, wait_for_disconnect
from asr_service.deps import SettingsDep, TranscriberDep
from asr_service.schemas import ErrorResponse, TranscriptionJsonRequest, TranscriptionResponse
from asr_service.transcription import ClientDisconnected

router = APIRouter(tags=["transcription"])

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a client that hung up before the answer; logged and counted, never seen by anyone."""

_LANGUAGE_FIELD = {"type": "string", "enum": ["auto", "zh", "yue", "en"], "default": "auto"}

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "WAV, MP3, FLAC, OGG, Opus, AMR, M4A..."},
                        "language": _LANGUAGE_FIELD,
                    },
                },
                "encoding": {"file": {"contentType": "audio/*"}},
                "example": {"file": "(binary call.mp3)", "language": "zh"},
            },
            "application/json": {
                "schema": TranscriptionJsonRequest.model_json_schema(),
                "example": {"audio": "data:audio/wav;base64,UklGRi4AAABXQVZFZm10IBAAAAAB...", "language": "auto"},
            },
        },
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "invalid_request: malformed body",
        413: "payload_too_large or audio_too_long",
        415: "unsupported_audio (not decodable audio) or invalid_request (wrong content type)",
        422: "invalid_request (bad parameter) or empty_audio",
        500: "internal_error: the model failed on this audio",
        503: "overloaded (with Retry-After) or not_ready",
        504: "timeout",
    }.items()
}


@router.post(
    "/asr",
    response_model=TranscriptionResponse,
    summary="Transcribe a recording",
    description="Send the audio as multipart/form-data (`file`) or as JSON (`audio`: base64 or a data URL).",
    openapi_extra=REQUEST_BODY,
    responses=ERROR_RESPONSES,
)
async def transcribe(request: Request, transcriber: TranscriberDep, settings: SettingsDep) -> TranscriptionResponse | Response:
    upload = await read_audio_upload(request, settings.max_upload_bytes)
    client_gone = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        return await transcriber.transcribe(upload.data, upload.options, client_gone)
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        client_gone.cancel()
