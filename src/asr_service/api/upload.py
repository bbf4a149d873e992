"""Read an upload from either request form, enforcing the size limit while the body streams in.

Multipart files are kept in memory (Starlette would otherwise spool anything over 1 MB to a temp file): the decoder
reads bytes, and a bounded body size bounds the memory.
"""

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile
from pydantic import ValidationError
from starlette.formparsers import MultiPartException, MultiPartParser

from asr_service.audio.decode import decode_base64_audio
from asr_service.errors import (
    InvalidParameterError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from asr_service.schemas import TranscriptionJsonRequest, TranscriptionOptions

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries, headers and small fields on top of the file itself."""


@dataclass(frozen=True)
class AudioUpload:
    data: bytes
    options: TranscriptionOptions


class _InMemoryMultiPartParser(MultiPartParser):
    spool_max_size = sys.maxsize


async def read_audio_upload(request: Request, max_bytes: int) -> AudioUpload:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _read_multipart(request, max_bytes)
    if media_type == "application/json":
        return await _read_json(request, max_bytes)
    raise UnsupportedMediaTypeError(
        f"unsupported content type '{media_type or 'none'}': send multipart/form-data with a `file` field, "
        "or application/json with a base64 `audio` field"
    )


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client hangs up (call only after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors(include_url=False)
    )


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the upload is larger than the {max_bytes / 1024 / 1024:.0f} MB limit")


async def _limited_body(request: Request, limit: int, max_bytes: int) -> AsyncIterator[bytes]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(max_bytes)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(max_bytes)
        yield chunk


def _parse_options(fields: dict[str, object]) -> TranscriptionOptions:
    try:
        return TranscriptionOptions.model_validate(fields)
    except ValidationError as e:
        raise InvalidParameterError(validation_message(e)) from e


async def _read_multipart(request: Request, max_bytes: int) -> AudioUpload:
    body = _limited_body(request, max_bytes + FORM_OVERHEAD_BYTES, max_bytes)
    try:
        form = await _InMemoryMultiPartParser(request.headers, body, max_files=1, max_fields=32).parse()
    except MultiPartException as e:
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
        options = _parse_options({k: v for k, v in form.items() if isinstance(v, str)})
        return AudioUpload(data=data, options=options)
    finally:
        await form.close()


async def _read_json(request: Request, max_bytes: int) -> AudioUpload:
    limit = max_bytes * 4 // 3 + FORM_OVERHEAD_BYTES
    body = b"".join([chunk async for chunk in _limited_body(request, limit, max_bytes)])
    try:
        payload = json.loads(body)
    except ValueError as e:
        raise InvalidRequestError(f"the body is not valid JSON: {e}") from e
    try:
        parsed = TranscriptionJsonRequest.model_validate(payload)
    except ValidationError as e:
        raise InvalidParameterError(validation_message(e)) from e
    data = decode_base64_audio(parsed.audio)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return AudioUpload(data=data, options=TranscriptionOptions(language=parsed.language))
