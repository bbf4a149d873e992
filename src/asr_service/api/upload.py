"""Read an upload from either request form, enforcing the size limit while the body streams in.

Multipart files are kept in memory (Starlette would otherwise spool anything over 1 MB to a temp file): the decoder
reads bytes, and a bounded body size bounds the memory.
"""

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from asr_service.audio.decode import decode_base64_audio
from asr_service.audit import AudioFacts, audited_parameters, transcript_facts
from asr_service.config import Settings
from asr_service.errors import (
    BodyTimeoutError,
    InvalidParameterError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    describe_validation_errors,
)
from asr_service.output_folder import OutputFolder
from asr_service.schemas import ErrorResponse, TranscriptionJsonRequest, TranscriptionOptions, TranscriptionResponse
from asr_service.transcription import ClientDisconnected, Transcriber

MAX_FORM_FIELD_BYTES = 16 * 1024
"""A text field (language, hotwords, prompt…) longer than this is refused (422) before it is parsed further."""
FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries, headers and small fields on top of the file itself."""

AUDIO_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "invalid_request: malformed body",
        408: "request_timeout: the upload stalled longer than ASR_BODY_TIMEOUT_SECONDS",
        413: "payload_too_large or audio_too_long",
        415: "unsupported_audio (not decodable audio) or invalid_request (wrong content type)",
        422: "invalid_request (bad parameter) or empty_audio",
        500: "internal_error: the model failed on this audio",
        503: "overloaded (with Retry-After) or not_ready",
        504: "timeout",
    }.items()
}
"""Every error status an audio upload route can answer, for its OpenAPI entry."""


OptionsT = TypeVar("OptionsT", bound=BaseModel)
AudioJson = TypeVar("AudioJson", bound=TranscriptionJsonRequest)


@dataclass(frozen=True)
class AudioUpload(Generic[OptionsT]):
    data: bytes
    options: OptionsT
    filename: str | None = None
    """The caller's name for the recording (multipart file name, or JSON `filename`): names saved results."""


class _InMemoryMultiPartParser(MultiPartParser):
    spool_max_size = sys.maxsize


async def read_audio_upload(
    request: Request,
    settings: Settings,
    options_model: type[OptionsT],
    json_model: type[AudioJson] | None = None,
) -> AudioUpload[OptionsT]:
    """The audio bytes and validated options from multipart (or, if `json_model` is given, JSON).

    Options may also come in the query string (`?response_format=srt`); the body wins when both have one.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query = {k: v for k, v in request.query_params.items() if k in options_model.model_fields}
    if media_type == "multipart/form-data":
        data, fields, filename = await _read_multipart(
            request, settings.max_upload_bytes, settings.body_timeout_seconds
        )
        return AudioUpload(data, _validate(options_model, {**query, **fields}), filename)
    if media_type == "application/json" and json_model is not None:
        query_values = _validate(options_model, query).model_dump(include=set(query))  # text read laxly, then typed
        data, payload = await _read_json(
            request, settings.max_upload_bytes, settings.body_timeout_seconds, json_model, query_values
        )
        return AudioUpload(data, _validate(options_model, payload), payload.get("filename"))  # type: ignore[arg-type]
    expected = "multipart/form-data with a `file` field"
    if json_model is not None:
        expected += ", or application/json with a base64 `audio` field"
    raise UnsupportedMediaTypeError(f"unsupported content type '{media_type or 'none'}': send {expected}")


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client hangs up (call only after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def transcribe_upload(
    request: Request, transcriber: Transcriber, data: bytes, options: TranscriptionOptions, filename: str | None
) -> TranscriptionResponse | None:
    """Transcribe while watching the connection; None if the client hung up (its segments were withdrawn). Saved to
    the output folder when one is set."""
    audited = getattr(request.state, "audit_log", None) is not None
    if audited:
        digest = await run_in_threadpool(lambda: hashlib.sha256(data).hexdigest())  # 256 MB take half a second
        request.state.audit_details = {
            "audio": AudioFacts(sha256=digest, bytes=len(data)),
            "parameters": audited_parameters(options),
        }
    client_gone = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        result = await transcriber.transcribe(data, options, client_gone)
    except ClientDisconnected:
        return None
    finally:
        client_gone.cancel()
    if audited:
        request.state.audit_details |= transcript_facts(result)
    output_folder: OutputFolder | None = getattr(request.state, "output_folder", None)
    if output_folder is not None:
        await run_in_threadpool(output_folder.save, result, filename)
    return result


def multipart_schema(options_model: type[BaseModel]) -> dict[str, object]:
    """OpenAPI schema of a multipart upload for /docs: the `file` plus the options model's fields."""
    kept = ("type", "enum", "default", "description", "items", "anyOf", "minimum", "maximum")
    fields = {
        name: {key: value for key, value in schema.items() if key in kept}
        for name, schema in options_model.model_json_schema()["properties"].items()
    }
    audio = {"type": "string", "format": "binary", "description": "WAV, MP3, FLAC, OGG, Opus, AMR, M4A, ..."}
    return {"type": "object", "required": ["file"], "properties": {"file": audio, **fields}}


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the upload is larger than the {max_bytes / 1024 / 1024:.0f} MB limit")


async def _limited_body(request: Request, limit: int, max_bytes: int, idle_timeout: float) -> AsyncIterator[bytes]:
    """The body, refused as soon as it passes `limit` bytes or pauses longer than `idle_timeout` seconds (a slow or
    stalled client must not hold a connection and its memory for ever when no nginx stands in front)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(max_bytes)
    received = 0
    chunks = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), idle_timeout)
        except StopAsyncIteration:
            return
        except TimeoutError as e:
            raise BodyTimeoutError(f"the upload stalled for more than {idle_timeout:.0f} s") from e
        received += len(chunk)
        if received > limit:
            raise _too_large(max_bytes)
        yield chunk


def _validate(model: type[OptionsT], fields: dict[str, object]) -> OptionsT:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise InvalidParameterError(describe_validation_errors(e.errors(include_url=False))) from e


async def _read_multipart(
    request: Request, max_bytes: int, idle_timeout: float
) -> tuple[bytes, dict[str, object], str | None]:
    body = _limited_body(request, max_bytes + FORM_OVERHEAD_BYTES, max_bytes, idle_timeout)
    try:
        parser = _InMemoryMultiPartParser(
            request.headers, body, max_files=1, max_fields=32, max_part_size=MAX_FORM_FIELD_BYTES
        )
        form = await parser.parse()
    except MultiPartException as e:
        if "maximum size" in e.message:
            raise InvalidParameterError(f"a form field is longer than {MAX_FORM_FIELD_BYTES // 1024} KB") from e
        raise InvalidRequestError(f"malformed multipart body: {e.message}") from e
    try:
        file = form.get("file")
        if "audio" in form:
            raise InvalidRequestError("send the audio once: a multipart `file`, or a JSON body with `audio`, not both")
        if file is None:
            raise InvalidParameterError("file: required; send the audio as a multipart field named `file`")
        if not isinstance(file, UploadFile):
            raise InvalidParameterError("file: must be a file upload, not a text field")
        data = await file.read()
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        fields: dict[str, object] = {}
        for key in form.keys():
            values = [value for value in form.getlist(key) if isinstance(value, str)]
            if values and key != "file":  # a repeated field (hotwords=a&hotwords=b) stays a list
                fields[key] = values[0] if len(values) == 1 else values
        return data, fields, file.filename
    finally:
        await form.close()


async def _read_json(
    request: Request,
    max_bytes: int,
    idle_timeout: float,
    json_model: type[AudioJson],
    query: dict[str, object],
) -> tuple[bytes, dict[str, object]]:
    limit = max_bytes * 4 // 3 + FORM_OVERHEAD_BYTES
    body = b"".join([chunk async for chunk in _limited_body(request, limit, max_bytes, idle_timeout)])
    try:
        payload = json.loads(body)
    except RecursionError as e:
        raise InvalidRequestError("the body is not valid JSON: nested too deeply") from e
    except ValueError as e:
        raise InvalidRequestError(f"the body is not valid JSON: {e}") from e
    if not isinstance(payload, dict):
        raise InvalidParameterError("body: must be a JSON object with an `audio` field")
    parsed = _validate(json_model, {**query, **payload})
    data = decode_base64_audio(parsed.audio)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data, parsed.model_dump(exclude={"audio"})
