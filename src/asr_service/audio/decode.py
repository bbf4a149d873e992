"""Bytes in any container/codec FFmpeg knows -> float32 16 kHz samples, per channel, in memory.

PyAV reads from a BytesIO, so nothing touches the disk. Channels are kept (a later step may transcribe an agent and
a caller channel separately); `mono()` gives the downmix.
"""

import base64
import binascii
import io
import logging
import re
import time
from dataclasses import dataclass

import av
import numpy as np

from asr_service.audio import SAMPLE_RATE
from asr_service.errors import AudioDecodeError, AudioTooLongError, EmptyAudioError, InvalidParameterError

logger = logging.getLogger(__name__)


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

    @property
    def channels(self) -> int:
        return int(self._data.shape[0])

    def result(self) -> np.ndarray:
        return self._data[:, : self.length]

    def energy(self) -> float:
        """Mean square over all channels: which of several audio streams carries the call."""
        samples = self.result()
        return float(np.einsum("ij,ij->", samples, samples)) / max(samples.size, 1)


@dataclass(frozen=True)
class DecodeLimits:
    """What one upload may decode to; each is checked before or while decoding, so a tiny file that claims hours, a
    huge sample rate or dozens of channels is refused at once rather than after minutes of CPU."""

    max_seconds: float
    """Longest audio (413 `audio_too_long`)."""
    max_channels: int = 8
    """Most channels in the chosen stream (415 `unsupported_audio` above)."""
    max_channel_seconds: float = 8 * 3600
    """Seconds summed over channels and audio streams (413 `audio_too_long` above)."""
    max_decode_seconds: float = 300
    """Wall-clock bound on decoding one upload (415 `unsupported_audio` past it)."""


ALLOWED_DEMUXERS = (
    "aac",
    "aiff",
    "amr",
    "amrnb",
    "amrwb",
    "asf",
    "au",
    "caf",
    "flac",
    "matroska",
    "mov",
    "mp3",
    "ogg",
    "w64",
    "wav",
    "wv",
)
"""Containers of recorded audio. Everything else FFmpeg knows is refused before it is opened: playlists (ffconcat,
HLS) read other files, network descriptions (SDP, RTSP) open sockets, image sequences and raw formats are not calls."""
_OPEN_OPTIONS = {"format_whitelist": ",".join(ALLOWED_DEMUXERS), "protocol_whitelist": "none"}
"""`protocol_whitelist` none: a container may never open a file or a socket of its own (ours is an in-memory buffer)."""
SOURCE_RATES = (4_000, 384_000)
"""Sample rates a recording can have; a header outside them is corrupt or hostile (1 Hz turned 28 KB into 4 hours)."""
MAX_AUDIO_STREAMS = 4
"""Audio streams decoded to choose from (a recorder may put silence in the first one)."""


def decode_audio(data: bytes, limits: DecodeLimits) -> DecodedAudio:
    """Decode the loudest audio stream of a file; refuse what breaks a limit as soon as it shows."""
    if not data:
        raise EmptyAudioError("the uploaded audio is empty (0 bytes)")
    started = time.monotonic()
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore", options=_OPEN_OPTIONS)
    except av.ArgumentError as e:
        raise AudioDecodeError("not a supported audio file (accepted: WAV, MP3, FLAC, OGG, Opus, AMR, M4A, ...)") from e
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as e:
        raise AudioDecodeError(f"not a recognised audio file ({_reason(e)})") from e
    with container:
        streams = [s for s in container.streams if s.type == "audio"][:MAX_AUDIO_STREAMS]
        if not streams:
            raise AudioDecodeError(f"the file ({container.format.name}) has no audio stream")
        for stream in streams:
            _check_stream(stream, limits)
        duration = container.duration / av.time_base if container.duration else None
        if duration is not None:
            if duration > limits.max_seconds * 1.05:
                raise AudioTooLongError(_too_long_message(duration, limits.max_seconds))
            _check_channel_seconds(duration * sum(s.codec_context.channels or 1 for s in streams), limits, 1.05)
        try:
            buffers = _decode_streams(container, streams, duration, limits, started)
        except av.FFmpegError as e:
            raise AudioDecodeError(f"the audio could not be decoded ({_reason(e)})") from e
        chosen = 0 if len(buffers) == 1 else max(range(len(buffers)), key=lambda i: buffers[i].energy())
        stream, buffer = streams[chosen], buffers[chosen]
        samples = buffer.result()
        if not np.isfinite(samples).all():
            raise AudioDecodeError("the audio contains NaN or infinite sample values; the file is corrupt")
        return DecodedAudio(
            samples=samples,
            source_sample_rate=int(stream.codec_context.sample_rate or SAMPLE_RATE),
            source_format=container.format.name,
        )


def _check_stream(stream: av.AudioStream, limits: DecodeLimits) -> None:
    context = stream.codec_context
    if context is None or context.codec is None:
        raise AudioDecodeError("the audio codec of this file is not supported")
    rate = context.sample_rate or 0
    if not SOURCE_RATES[0] <= rate <= SOURCE_RATES[1]:
        raise AudioDecodeError(f"a sample rate of {rate} Hz is not plausible for a recording (corrupt header?)")
    channels = context.channels or 1
    if channels > limits.max_channels:
        raise AudioDecodeError(f"the audio has {channels} channels; at most {limits.max_channels} are accepted")


def _decode_streams(
    container: av.container.InputContainer,
    streams: list[av.AudioStream],
    duration: float | None,
    limits: DecodeLimits,
    started: float,
) -> list["_SampleBuffer"]:
    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    expected = min(int((duration or 0) * SAMPLE_RATE * 1.01), max_samples + SAMPLE_RATE)
    buffers = [_SampleBuffer(s.codec_context.channels or 1, expected) for s in streams]
    # Packed float, de-interleaved in numpy: PyAV's planar to_ndarray() crashes the process on 8+ channels.
    layouts = [s.codec_context.layout.name for s in streams]  # fixed now: the codec context follows the frames
    resamplers = [_resampler(layout) for layout in layouts]
    index = {stream.index: i for i, stream in enumerate(streams)}
    try:
        for packet in container.demux(*streams):
            i = index[packet.stream.index]
            for frame in packet.decode():
                frame.pts = None  # resample by sample count; broken timestamps must not drop or insert audio
                try:
                    converted = resamplers[i].resample(frame)
                except ValueError:  # the format, layout or rate changed mid-stream (a spliced or corrupt file)
                    converted = resamplers[i].resample(None)
                    resamplers[i] = _resampler(layouts[i])  # same output, set up for the new input
                    converted += resamplers[i].resample(frame)
                for out in converted:
                    buffers[i].append(_deinterleave(out))
            if buffers[i].length > max_samples:
                raise AudioTooLongError(_too_long_message(buffers[i].length / SAMPLE_RATE, limits.max_seconds))
            _check_channel_seconds(sum(b.length * b.channels for b in buffers) / SAMPLE_RATE, limits)
            if time.monotonic() - started > limits.max_decode_seconds:
                raise AudioDecodeError(f"decoding took longer than {limits.max_decode_seconds:.0f} s; file refused")
        for i in range(len(streams)):
            for out in resamplers[i].resample(None):
                buffers[i].append(_deinterleave(out))
    except av.FFmpegError as e:
        if not any(b.length for b in buffers):
            raise
        # A truncated or partly corrupt recording: keep what decoded, as a person listening would.
        logger.warning("decoding stopped after %.1f s: %s", max(b.length for b in buffers) / SAMPLE_RATE, _reason(e))
    for buffer in buffers:
        if buffer.length > max_samples:
            raise AudioTooLongError(_too_long_message(buffer.length / SAMPLE_RATE, limits.max_seconds))
    return buffers


def _resampler(layout: str) -> av.AudioResampler:
    """To packed float at 16 kHz in the stream's first channel layout, whatever the frames bring later."""
    return av.AudioResampler(format="flt", layout=layout, rate=SAMPLE_RATE)


def _check_channel_seconds(seconds: float, limits: DecodeLimits, tolerance: float = 1.0) -> None:
    """Seconds summed over channels and streams (a header's claim gets `tolerance`, decoded audio none)."""
    if seconds > limits.max_channel_seconds * tolerance:
        raise AudioTooLongError(
            f"the audio summed over its channels is longer than the {limits.max_channel_seconds:.0f} s limit "
            f"(at least {seconds:.0f} s)"
        )


def _reason(error: Exception) -> str:
    """FFmpeg's words without its errno number or the '<none>' file name of an in-memory buffer."""
    text = getattr(error, "strerror", None) or str(error)
    return re.sub(r"^\[Errno -?\d+\]\s*|:\s*'<none>'$", "", str(text)).strip() or type(error).__name__


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
