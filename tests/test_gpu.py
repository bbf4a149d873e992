"""The full-size GLM-ASR-Nano architecture (random weights) in float16 on CUDA; skipped without a GPU."""

from pathlib import Path

import pytest
import torch
from audio_factory import clip_samples, manifest
from transformers import AutoProcessor, GlmAsrConfig, GlmAsrForConditionalGeneration

from asr_service.config import Settings
from asr_service.engines.base import Chunk
from asr_service.engines.loader import load_engine

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def full_size_dir(tiny_glmasr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real GLM-ASR-Nano-2512 dimensions (1.5B parameters) with the tiny tokenizer's special-token ids."""
    out = tmp_path_factory.mktemp("glmasr-full-size")
    processor = AutoProcessor.from_pretrained(tiny_glmasr_dir)
    tokenizer = processor.tokenizer
    end_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|user|>", "<|observation|>")]
    config = GlmAsrConfig(
        text_config={"eos_token_id": end_ids}, audio_token_id=tokenizer.convert_tokens_to_ids("<|pad|>")
    )
    GlmAsrForConditionalGeneration(config).to(torch.float16).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_full_size_model_batches_on_gpu(full_size_dir: Path, model_cache: Path) -> None:
    engine = load_engine(Settings(model=str(full_size_dir), cache_dir=model_cache))
    chunks = [Chunk(clip_samples(clip.file)[0][: 15 * 16000]) for clip in manifest() if clip.channels == 1][:8]
    batched = engine.transcribe_batch(chunks)
    assert len(batched) == 8 and all(0 <= r.confidence <= 1 for r in batched)
    assert torch.cuda.max_memory_allocated() < 12 * 1024**3
