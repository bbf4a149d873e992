"""Callbacks: where a finished job may be POSTed. Only hosts an operator listed in `ASR_CALLBACK_ALLOWED_HOSTS`, so a
caller cannot make the service probe the internal network; empty (the default) turns callbacks off."""

from urllib.parse import urlsplit

from asr_service.errors import InvalidParameterError


def check_callback_url(url: str, allowed_hosts: frozenset[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError("callback_url: must be an http:// or https:// URL")
    if not allowed_hosts:
        raise InvalidParameterError("callback_url: callbacks are off on this server (ASR_CALLBACK_ALLOWED_HOSTS)")
    if parts.hostname.lower() not in allowed_hosts:
        raise InvalidParameterError(f"callback_url: the host {parts.hostname!r} is not allowed on this server")
