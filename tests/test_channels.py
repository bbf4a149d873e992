"""Mix or split: one voice on two microphones is transcribed once; two people on two channels get their roles."""

import httpx
import numpy as np
import pytest
from audio_factory import Placement, build_call, clip_samples, wav_bytes

from asr_service.audio.channels import channels_are_copies, decide_channels
from asr_service.audio.decode import SAMPLE_RATE, DecodedAudio


def two_microphones(voice: np.ndarray, seed: int = 0) -> np.ndarray:
    """One speaker heard by a second microphone further away: 2 ms later, 6 dB quieter, duller, with a room echo
    and its own noise; the first microphone has its own noise too."""
    rng = np.random.default_rng(seed)
    far = np.concatenate([np.zeros(32, np.float32), voice[:-32]]) * 0.5
    dull = np.empty_like(far)
    level = 0.0
    for i, sample in enumerate(far):  # one-pole low-pass
        level = 0.7 * level + 0.3 * sample
        dull[i] = level
    dull[4000:] += 0.3 * dull[:-4000]  # a 250 ms echo
    near = voice + rng.standard_normal(voice.size) * 0.003
    return np.stack([near, dull + rng.standard_normal(voice.size) * 0.003]).astype(np.float32)


def agent_and_caller(leak: float = 0.0) -> np.ndarray:
    call = build_call(
        [
            Placement(1, "en_jfk.flac", 0),
            Placement(13, "zh_funasr_llamacpp_sample.wav", 1),
            Placement(20, "en_speechbrain_example1.wav", 0),
            Placement(25, "yue_wsyue_xg0054024_2380_8540.wav", 1),
        ],
        33,
        channels=2,
    )
    return np.stack([call[0] + leak * call[1], call[1] + leak * call[0]])


def decision(samples: np.ndarray) -> str:
    return decide_channels(DecodedAudio(samples, SAMPLE_RATE, "wav"), "auto")


@pytest.mark.parametrize("clip", ["en_jfk.flac", "en_osr_us_000_0034_8k.wav", "zh_funasr_llamacpp_sample.wav"])
def test_one_voice_on_two_microphones_is_mixed(clip: str) -> None:
    recording = two_microphones(clip_samples(clip).mean(axis=0))
    assert not channels_are_copies(recording)  # the old rule would have split it
    assert decision(recording) == "mix"


@pytest.mark.parametrize("leak", [0.0, 0.03, 0.1, 0.3])
def test_two_people_are_split_even_when_each_leaks_into_the_other(leak: float) -> None:
    assert decision(agent_and_caller(leak)) == "split"


def test_real_two_speaker_recording_and_silent_second_channel_are_split() -> None:
    assert decision(clip_samples("en_stereo_diarization.wav")) == "split"
    voice = clip_samples("en_jfk.flac").mean(axis=0)
    hiss = np.random.default_rng(1).standard_normal(voice.size).astype(np.float32) * 0.002
    assert decision(np.stack([voice, hiss])) == "split"


def test_explicit_modes_are_obeyed() -> None:
    audio = DecodedAudio(agent_and_caller(), SAMPLE_RATE, "wav")
    assert decide_channels(audio, "mix") == "mix"
    audio = DecodedAudio(two_microphones(clip_samples("en_jfk.flac").mean(axis=0)), SAMPLE_RATE, "wav")
    assert decide_channels(audio, "split") == "split"


async def test_a_two_microphone_recording_is_transcribed_once(whisper: httpx.AsyncClient) -> None:
    recording = two_microphones(clip_samples("en_jfk.flac").mean(axis=0))
    body = (await whisper.post("/asr", files={"file": ("two-mics.wav", wav_bytes(recording))})).json()
    assert body["channels"] == 2 and body["channel_mode"] == "mix"
    assert body["text"].lower().count("country") == 2, body["text"]  # "…your country… for your country"
    assert all(s["speaker"] is None for s in body["segments"])
