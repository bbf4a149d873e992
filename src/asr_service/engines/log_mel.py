"""Whisper log-mel features computed over each segment's own samples, equal to the 30-second padded ones.

The feature extractor pads every segment with zeros to 30 s and transforms all of it; for our segments (mean 5.5 s)
most of that work is padding, and it was the largest CPU cost per batch (172 ms of 8 segments on the H100 machine).
Frames whose window holds only padding all come out as the same value (log10 of the 1e-10 floor, then the usual
8-dB clamp under the segment's maximum), so they are filled rather than transformed. Every other frame is the same
short-time transform of the same samples, so the result equals the extractor's (`tests/test_glm_model_path.py`).
"""

from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, WhisperFeatureExtractor

_LOG_FLOOR = -10.0
"""log10 of the extractor's 1e-10 floor: the value of a frame of silence before the clamp."""


class SegmentLogMel:
    """Stands in for the processor's `WhisperFeatureExtractor` (same call, same output) and delegates the rest."""

    def __init__(self, extractor: WhisperFeatureExtractor, device: torch.device) -> None:
        self._extractor = extractor
        self._device = device
        self._window = torch.hann_window(extractor.n_fft, device=device)
        self._filters = torch.from_numpy(extractor.mel_filters).to(device, torch.float32).T.contiguous()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._extractor, name)

    def __call__(self, audios: list[np.ndarray], **kwargs: Any) -> BatchFeature:
        extractor = self._extractor
        if extractor.dither or kwargs.get("padding", "max_length") != "max_length" or kwargs.get("do_normalize"):
            kwargs["device"] = str(self._device)  # not the padded-window case this class reproduces
            return extractor(audios, **kwargs)
        frames = extractor.nb_max_frames
        features = torch.empty(len(audios), extractor.feature_size, frames, device=self._device)
        mask = torch.zeros(len(audios), frames, dtype=torch.int32)
        for row, audio in enumerate(audios):
            features[row] = self._segment(np.asarray(audio, dtype=np.float32)[: extractor.n_samples])
            mask[row, : -(-audio.shape[0] // extractor.hop_length)] = 1
        return BatchFeature({"input_features": features, "attention_mask": mask})

    def _segment(self, audio: np.ndarray) -> torch.Tensor:
        extractor = self._extractor
        # Enough zeros after the speech that every transformed frame sees exactly what the padded signal holds.
        length = min(audio.shape[0] + extractor.n_fft, extractor.n_samples)
        waveform = torch.zeros(length, device=self._device)
        waveform[: audio.shape[0]] = torch.from_numpy(audio).to(self._device)
        stft = torch.stft(waveform, extractor.n_fft, extractor.hop_length, window=self._window, return_complex=True)
        magnitudes = (stft[..., :-1].abs() ** 2).contiguous()
        log_spec = torch.clamp(self._filters @ magnitudes, min=1e-10).log10()
        padded = torch.full((extractor.feature_size, extractor.nb_max_frames), _LOG_FLOOR, device=self._device)
        padded[:, : log_spec.shape[1]] = log_spec
        padded = torch.maximum(padded, padded.max() - 8.0)
        return (padded + 4.0) / 4.0
