"""Mix or split a multi-channel recording: one voice on several microphones is mixed, separate people are split.

Hotline recorders put the call-taker and the citizen on separate channels; splitting them gives each turn its
speaker. But a recording of ONE speaker on two microphones (or a mono call saved as stereo) must be mixed, or every
phrase is transcribed twice. The energy of the channels' difference only recognises exact copies; two microphones
on one voice differ in delay, colour and noise. What separates the cases is how the channels' loudness moves:
one voice on two microphones rises and falls on both at once with a steady level difference, while two people take
turns, so the louder channel changes with the speaker (also when one leaks into the other's microphone).
"""

from typing import Literal

import numpy as np

from asr_service.audio.decode import SAMPLE_RATE, DecodedAudio
from asr_service.audio.levels import frame_power

IDENTICAL_CHANNELS = 0.05
"""Relative energy of the channels' difference below which they are copies of one signal."""
ENVELOPE_FRAME_SECONDS = 0.032
ACTIVE_ABOVE_FLOOR_DB = 12.0
"""A frame is active on a channel when it is this much louder than that channel's noise floor (10th percentile)."""
ONE_VOICE_CORRELATION = 0.5
"""Correlation of the channels' loudness (dB) over active frames above which they may carry the same voice
(measured: 0.67-0.95 for one voice on two simulated microphones; -0.8 to 0.57 for two people taking turns)..."""
ONE_VOICE_LEVEL_SPREAD_DB = 15.0
"""...provided their level difference stays within this range (10th to 90th percentile). Measured: 4-10 dB for one
voice on two microphones; two people taking turns swing it from one side to the other, 21 dB even when each leaks
into the other's microphone at -10 dB, 40-100 dB otherwise."""
MIN_ACTIVE_FRAMES = 30
"""About a second of activity: less is too little evidence to mix."""

ChannelDecision = Literal["mix", "split"]


def channels_are_copies(samples: np.ndarray, block: int = 1 << 20) -> bool:
    """True when every channel carries the same signal as the first (so splitting would transcribe it twice).

    Block by block, so a 4-hour stereo call needs megabytes, not gigabytes, of temporaries.
    """
    first = samples[0]
    for other in samples[1:]:
        difference = energy = 0.0
        for start in range(0, first.size, block):
            a, b = first[start : start + block], other[start : start + block]
            d = b - a
            difference += float(np.dot(d, d))
            energy += float(np.dot(a, a)) + float(np.dot(b, b))
        if energy and difference / energy > IDENTICAL_CHANNELS:
            return False
    return True


def loudness_db(signal: np.ndarray, frame: int) -> np.ndarray:
    """Power per frame in dB (a floor at -120 dB for digital silence)."""
    return 10 * np.log10(np.maximum(frame_power(signal, frame), 1e-12))


def carry_one_voice(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two channels carry the same voice (two microphones, or copies with different gain and noise)."""
    frame = int(ENVELOPE_FRAME_SECONDS * SAMPLE_RATE)
    a, b = loudness_db(first, frame), loudness_db(second, frame)
    active = (a > np.percentile(a, 10) + ACTIVE_ABOVE_FLOOR_DB) | (b > np.percentile(b, 10) + ACTIVE_ABOVE_FLOOR_DB)
    if int(active.sum()) < MIN_ACTIVE_FRAMES:
        return False
    a, b = a[active], b[active]
    if a.std() == 0 or b.std() == 0:
        return False
    correlation = float(np.corrcoef(a, b)[0, 1])
    low, high = np.percentile(a - b, [10, 90])
    return correlation >= ONE_VOICE_CORRELATION and float(high - low) <= ONE_VOICE_LEVEL_SPREAD_DB


def decide_channels(audio: DecodedAudio, requested: Literal["auto", "mix", "split"]) -> ChannelDecision:
    if audio.channel_count == 1 or requested == "mix":
        return "mix"
    if requested == "split":
        return "split"
    if channels_are_copies(audio.samples):
        return "mix"
    first = audio.samples[0]
    return "mix" if all(carry_one_voice(first, other) for other in audio.samples[1:]) else "split"
