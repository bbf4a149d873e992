"""POST /asr: one recording in, one transcript out."""

from fastapi import APIRouter, Request, Response

from asr_service.api.upload import AUDIO_ERROR_RESPONSES, multipart_schema, read_audio_upload, transcribe_upload
from asr_service.deps import SettingsDep, TranscriberDep
from asr_service.errors import CLIENT_CLOSED_REQUEST
from asr_service.formats import render_transcript
from asr_service.schemas import (
    EXAMPLE_AUDIO,
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


@router.post(
    "/asr",
    response_model=TranscriptionResponse,
    summary="Transcribe a recording",
    description="Send the audio as multipart/form-data (`file`) or as JSON (`audio`: base64 or a data URL). "
    "`response_format` `text`, `srt` or `vtt` answer in that format instead of JSON.",
    openapi_extra=REQUEST_BODY,
    responses=AUDIO_ERROR_RESPONSES,
)
async def transcribe(request: Request, transcriber: TranscriberDep, settings: SettingsDep) -> Response:
    upload = await read_audio_upload(request, settings, TranscriptionOptions, json_model=TranscriptionJsonRequest)
    result = await transcribe_upload(request, transcriber, upload.data, upload.options, upload.filename)
    if result is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return render_transcript(result, upload.options.response_format)
