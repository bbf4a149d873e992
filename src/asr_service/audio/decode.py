"""Bytes in any container/codec FFmpeg knows -> float32 16 kHz samples, per channel, in memory.

PyAV reads from a BytesIO, so nothing touches the disk. Channels are kept (a later step may transcribe an agent and
a caller channel separately); `mono()` gives the downmix.
"""

import base64
import binascii
import io
import logging
import re
from dataclasses import dataclass

import av
import numpy as np

from asr_service.errors import AudioDecodeError, AudioTooLongError, EmptyAudioError, InvalidParameterError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Every model here takes 16 kHz audio."""

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.IGNORECASE)


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray
    """float32, shape (channels, n_samples), 16 kHz."""
    source_sample_rate: int
    source_format: str

    @property
    def channel_count(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE

    def mono(self) -> np.ndarray:
        if self.channel_count == 1:
            return self.samples[0]
        return self.samples.mean(axis=0, dtype=np.float32)


class _SampleBuffer:
    """Growable (channels, n) float32 buffer: appending decoded frames without a list-then-concatenate copy."""

    def __init__(self, channels: int, expected_samples: int) -> None:
        self._data = np.empty((channels, max(expected_samples, SAMPLE_RATE)), dtype=np.float32)
        self.length = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.length + n > self._data.shape[1]:
            grown = np.empty((self._data.shape[0], max(2 * self._data.shape[1], self.length + n)), np.float32)
            grown[:, : self.length] = self._data[:, : self.length]
            self._data = grown
        self._data[:, self.length : self.length + n] = block
        self.length += n

    def result(self) -> np.ndarray:
        return self._data[:, : self.length]


def decode_audio(data: bytes, max_seconds: float) -> DecodedAudio:
    """Decode a whole file; raise AudioTooLongError as soon as more than `max_seconds` have been decoded."""
    if not data:
        raise EmptyAudioError("the uploaded audio is empty (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as e:
        raise AudioDecodeError(f"not a recognised audio file: {e}") from e
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioDecodeError(f"the file ({container.format.name}) has no audio stream")
        max_samples = int(max_seconds * SAMPLE_RATE)
        if container.duration is not None and container.duration / av.time_base > max_seconds * 1.05:
            raise AudioTooLongError(_too_long_message(container.duration / av.time_base, max_seconds))
        channels = stream.codec_context.channels or 1
        expected = int((container.duration or 0) / av.time_base * SAMPLE_RATE * 1.01)
        buffer = _SampleBuffer(channels, min(expected, max_samples + SAMPLE_RATE))
        # Packed float, de-interleaved in numpy: PyAV's planar to_ndarray() crashes the process on 8+ channels.
        resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # resample by sample count; broken timestamps must not drop or insert audio
                for out in resampler.resample(frame):
                    buffer.append(_deinterleave(out))
                if buffer.length > max_samples:
                    raise AudioTooLongError(_too_long_message(buffer.length / SAMPLE_RATE, max_seconds))
            for out in resampler.resample(None):
                buffer.append(_deinterleave(out))
        except av.FFmpegError as e:
            if buffer.length == 0:
                raise AudioDecodeError(f"the audio could not be decoded: {e}") from e
            # A truncated or partly corrupt recording: keep what decoded, as a person listening would.
            logger.warning("decoding stopped after %.1f s: %s", buffer.length / SAMPLE_RATE, e)
        samples = buffer.result()
        if samples.shape[1] > max_samples:
            raise AudioTooLongError(_too_long_message(samples.shape[1] / SAMPLE_RATE, max_seconds))
        if not np.isfinite(samples).all():
            raise AudioDecodeError("the audio contains NaN or infinite sample values; the file is corrupt")
        return DecodedAudio(
            samples=samples,
            source_sample_rate=int(stream.codec_context.sample_rate or SAMPLE_RATE),
            source_format=container.format.name,
        )


def _deinterleave(frame: av.AudioFrame) -> np.ndarray:
    channels = frame.layout.nb_channels
    return frame.to_ndarray().reshape(-1, channels).T


def _too_long_message(seconds: float, max_seconds: float) -> str:
    return f"the audio is longer than the {max_seconds:.0f} s limit (at least {seconds:.0f} s)"


def decode_base64_audio(text: str) -> bytes:
    """Accept plain base64 or a `data:audio/...;base64,` URL; reject data URLs that announce a non-audio type."""
    text = text.strip()
    match = _DATA_URL.match(text)
    if match:
        mime = (match.group("mime") or "application/octet-stream").lower()
        if not (mime.startswith("audio/") or mime.startswith("video/") or mime == "application/octet-stream"):
            raise AudioDecodeError(f"the data URL holds {mime}, not audio")
        text = text[match.end() :]
    elif text.startswith("data:"):
        raise InvalidParameterError("audio: a data URL must be base64-encoded (data:audio/...;base64,...)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidParameterError(f"audio: not valid base64 ({e})") from e
