"""POST /asr: one recording in, one transcript out."""

from fastapi import APIRouter, Request, Response

from asr_service.api.upload import multipart_schema, read_audio_upload, transcribe_upload
from asr_service.deps import SettingsDep, TranscriberDep
from asr_service.errors import CLIENT_CLOSED_REQUEST
from asr_service.formats import render_transcript
from asr_service.schemas import (
    EXAMPLE_AUDIO,
    ErrorResponse,
    TranscriptionJsonRequest,
    TranscriptionOptions,
    TranscriptionResponse,
)

router = APIRouter(tags=["transcription"])

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": multipart_schema(TranscriptionOptions),
                "encoding": {"file": {"contentType": "audio/*"}},
                "example": {
                    "file": "(binary call.mp3)",
                    "language": "zh",
                    "channels": "split",
                    "hotwords": "滨海新区,12345",
                },
            },
            "application/json": {
                "schema": TranscriptionJsonRequest.model_json_schema(),
                "example": {"audio": EXAMPLE_AUDIO, "language": "auto"},
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
    description="Send the audio as multipart/form-data (`file`) or as JSON (`audio`: base64 or a data URL). "
    "`response_format` `text`, `srt` or `vtt` answer in that format instead of JSON.",
    openapi_extra=REQUEST_BODY,
    responses=ERROR_RESPONSES,
)
async def transcribe(request: Request, transcriber: TranscriberDep, settings: SettingsDep) -> Response:
    upload = await read_audio_upload(request, settings, TranscriptionOptions, json_model=TranscriptionJsonRequest)
    result = await transcribe_upload(request, transcriber, upload.data, upload.options)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return render_transcript(result, upload.options.response_format)
