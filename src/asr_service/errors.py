"""Domain errors and the one place they become HTTP responses.

Code raises these where the problem is found (`raise AudioDecodeError(...) from e`); only the handlers here know
about status codes, so every route answers `{"error": {"code", "message"}}` with a stable code.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

logger = logging.getLogger(__name__)


class AsrError(Exception):
    """Base of every error a client may see."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequestError(AsrError):
    status = 400
    code = "invalid_request"


class InvalidParameterError(InvalidRequestError):
    status = 422


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415


class NotFoundError(AsrError):
    status = 404
    code = "not_found"


class BodyTimeoutError(AsrError):
    """The client stopped sending its upload."""

    status = 408
    code = "request_timeout"


class PayloadTooLargeError(AsrError):
    status = 413
    code = "payload_too_large"


class AudioDecodeError(AsrError):
    """The bytes are not audio we can decode (not a media file, no audio stream, corrupt samples)."""

    status = 415
    code = "unsupported_audio"


class AudioTooLongError(AsrError):
    status = 413
    code = "audio_too_long"


class EmptyAudioError(AsrError):
    status = 422
    code = "empty_audio"


class OverloadedError(AsrError):
    status = 503
    code = "overloaded"


class NotReadyError(AsrError):
    """The model is not loaded or the worker has stopped."""

    status = 503
    code = "not_ready"


class RequestTimeoutError(AsrError):
    status = 504
    code = "timeout"


class InferenceError(AsrError):
    """The model failed on this input even when run alone."""

    status = 500
    code = "internal_error"


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """`field: problem; field: problem` from pydantic's error list (FastAPI's `body` prefix left out)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg')}" for err in errors
    )


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a client that hung up before the answer; logged and counted, never seen by anyone."""

_HTTP_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 429: "rate_limited"}


def _error_response(
    request: Request, code: str, message: str, status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    request.state.error_code = code  # for the audit line
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AsrError)
    async def handle_asr_error(request: Request, exc: AsrError) -> JSONResponse:
        if exc.status == 500:
            logger.error("%s: %s", exc.code, exc.message)
        elif exc.status > 500:  # overload, shutdown, timeouts: the service works as designed
            logger.warning("%s: %s", exc.code, exc.message)
        return _error_response(request, exc.code, exc.message, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(error.get("type") == "json_invalid" for error in exc.errors()):  # not JSON at all: as /asr answers it
            return _error_response(request, "invalid_request", "the body is not valid JSON", 400)
        return _error_response(request, "invalid_request", describe_validation_errors(exc.errors()), 422)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_STATUS_CODES.get(exc.status_code, "invalid_request")
        return _error_response(request, code, str(exc.detail), exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def handle_client_gone(_: Request, exc: ClientDisconnect) -> Response:
        # The client hung up while its upload streamed in: nobody reads the answer; logged as nginx's 499.
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def handle_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "internal error; see the service log"), status_code=500)
