"""GLM-ASR on CUDA: the full-size architecture (random weights) in float16, and the GPU model-path options giving the
same tokens as the plain path. Skipped without a GPU (CI has none; run on a lent one, see the README)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from audio_factory import clip_samples, manifest

from asr_service.config import Settings
from asr_service.engines.base import Chunk, TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine, GlmAsrOptions
from asr_service.engines.loader import load_engine

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_gpu import attention_kernels  # noqa: E402


@pytest.fixture(scope="module")
def full_size_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real GLM-ASR-Nano-2512 dimensions with the tiny tokenizer's special-token ids, built by the same script."""
    out = tmp_path_factory.mktemp("glmasr-full-size")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_glmasr.py"), str(out), "--full-size"], check=True)
    return out


@pytest.fixture(scope="module")
def speech() -> list[Chunk]:
    return [Chunk(clip_samples(clip.file)[0][: 15 * 16000]) for clip in manifest() if clip.channels == 1]


def test_full_size_model_batches_on_gpu_within_6_gib(
    full_size_dir: Path, model_cache: Path, speech: list[Chunk]
) -> None:
    torch.cuda.reset_peak_memory_stats()
    engine = load_engine(Settings(model=str(full_size_dir), cache_dir=model_cache))
    batched = engine.transcribe_batch(speech[:8])
    assert len(batched) == 8 and all(0 <= r.confidence <= 1 for r in batched)
    assert torch.cuda.max_memory_reserved() < 6 * 1024**3


def test_attention_runs_fused_kernels_in_float16(full_size_dir: Path, speech: list[Chunk]) -> None:
    """The audio encoder attends without a mask, so PyTorch's fused attention runs FlashAttention's kernel in each of
    its 32 layers; no call falls back to the unfused arithmetic."""
    engine = GlmAsrEngine(full_size_dir, "cuda", torch.float16, TokenBudget(5, 4), GlmAsrOptions(decoder="loop"))
    assert engine.attention == {"audio encoder": "sdpa", "language model": "sdpa"}
    kernels = attention_kernels(engine, speech[:8])
    assert kernels.get("flash_attention", 0) >= 32 and "attention_math" not in kernels, kernels


@pytest.mark.parametrize(
    ("options", "ahead"),
    [
        (GlmAsrOptions(features_on_device=True), False),
        (GlmAsrOptions(compile=True), False),
        (GlmAsrOptions(decoder="loop"), False),
        (GlmAsrOptions(decoder="loop", compile=True), False),
        (GlmAsrOptions(decoder="loop", compile=True), True),
        (GlmAsrOptions(decoder="loop", compile=True, compile_prefill=True), True),
    ],
    ids=["device-features", "compile", "loop", "compile+loop", "compile+loop+prepared", "compile+loop+prefill"],
)
def test_gpu_options_give_the_plain_paths_tokens(
    tiny_glmasr_dir: Path, speech: list[Chunk], options: GlmAsrOptions, ahead: bool
) -> None:
    """In float32 on real speech: the same text and confidence as the plain path, batch by batch. `ahead`: inputs
    prepared before the batch, stacked in pinned memory and copied without waiting."""
    budget = TokenBudget(16, 16)
    plain = GlmAsrEngine(tiny_glmasr_dir, "cuda", torch.float32, budget)
    fast = GlmAsrEngine(tiny_glmasr_dir, "cuda", torch.float32, budget, options)
    for start in range(0, len(speech), 8):
        batch = speech[start : start + 8]
        expected, got = plain.transcribe_batch(batch), fast.transcribe_batch(fast.prepare(batch) if ahead else batch)
        assert [r.text for r in got] == [r.text for r in expected]
        assert [r.confidence for r in got] == pytest.approx([r.confidence for r in expected], abs=1e-3)
