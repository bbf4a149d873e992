"""GLM-ASR's model path on the CPU in float32 with the tiny checkpoint and the shared recordings: the engine gives
exactly what the model run directly (the documented processor + generate) gives, and its log-mel features, computed
over each segment's own samples, equal the feature extractor's 30-second padded ones."""

import json
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from audio_factory import clip_samples, manifest
from transformers import AutoProcessor, GlmAsrForConditionalGeneration, WhisperFeatureExtractor

from asr_service.engines.base import Chunk, TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine, GlmAsrOptions, instruction_for
from asr_service.engines.log_mel import SegmentLogMel

MONO = [clip.file for clip in manifest() if clip.channels == 1]


@pytest.fixture(scope="module")
def speech() -> list[Chunk]:
    return [Chunk(clip_samples(name)[0][: 15 * 16000]) for name in MONO]


def test_segment_features_equal_the_extractors_padded_ones() -> None:
    extractor = WhisperFeatureExtractor(feature_size=128)
    audios = [clip_samples(name)[0] for name in MONO]
    # and the edges: one hop, a whole number of hops, just under and exactly 30 s, over 30 s, silence
    rng = np.random.default_rng(7)
    audios += [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (160, 16_000, 479_999, 480_000, 500_000)]
    audios += [np.zeros(24_000, dtype=np.float32)]
    expected = extractor(audios, sampling_rate=16_000, return_attention_mask=True, return_tensors="pt")
    got = SegmentLogMel(extractor, torch.device("cpu"))(audios, sampling_rate=16_000, return_attention_mask=True)
    # The same transform of the same samples; the mel projection may sum in another order (float32 rounding).
    torch.testing.assert_close(got["input_features"], expected["input_features"], rtol=0, atol=1e-6)
    assert torch.equal(got["attention_mask"].int(), expected["attention_mask"].int())


@pytest.mark.parametrize("decoder", ["generate", "loop"])
def test_engine_gives_what_the_model_run_directly_gives(
    tiny_glmasr_dir: Path, speech: list[Chunk], decoder: Literal["generate", "loop"]
) -> None:
    budget = TokenBudget(16, 16)
    engine = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder=decoder))
    batched = [
        result for start in range(0, len(speech), 4) for result in engine.transcribe_batch(speech[start : start + 4])
    ]
    processor = AutoProcessor.from_pretrained(tiny_glmasr_dir)
    model = GlmAsrForConditionalGeneration.from_pretrained(tiny_glmasr_dir, dtype=torch.float32).eval()
    for chunk, result in zip(speech, batched, strict=True):
        inputs = processor.apply_transcription_request(chunk.audio, prompt=instruction_for(chunk))
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=budget.for_duration(chunk.duration),
            output_logits=True,
            return_dict_in_generate=True,
        )
        tokens = out.sequences[0, inputs.input_ids.shape[1] :]
        assert result.text == processor.decode(tokens, skip_special_tokens=True).strip()
        steps = torch.stack(
            [torch.log_softmax(step[0].float(), -1)[token] for step, token in zip(out.logits, tokens, strict=True)]
        )
        ends = [i for i, token in enumerate(tokens.tolist()) if token in model.generation_config.eos_token_id]
        scored = steps[: ends[0] + 1] if ends else steps
        assert result.confidence == pytest.approx(float(scored.exp().mean()), abs=1e-3)


def batched(engine: GlmAsrEngine, chunks: list[Chunk], sizes: list[int]) -> list[tuple[str, float]]:
    """Texts and confidences with the chunks cut into batches of the given sizes, in turn."""
    results, start = [], 0
    while start < len(chunks):
        size = sizes[len(results) % len(sizes)]
        results += [(r.text, r.confidence) for r in engine.transcribe_batch(chunks[start : start + size])]
        start += size
    return results


def test_compiled_greedy_loop_decodes_what_the_eager_loop_decodes(tiny_glmasr_dir: Path, speech: list[Chunk]) -> None:
    """`torch.compile` of the whole decoding step (CUDA graphs on a GPU; here the CPU's compiler), with the static
    cache reused across batches of two sizes: the same texts and confidences as the uncompiled loop. A batch too
    long for the static cache (15-second segments) is decoded uncompiled, also the same, and compiles nothing."""
    budget = TokenBudget(8, 8)
    eager = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    compiled = GlmAsrEngine(
        tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop", compile=True, max_cache_tokens=300)
    )
    longest = sorted(speech, key=lambda chunk: chunk.duration)[-2:]
    assert max(chunk.duration for chunk in longest) == 15
    chunks = [Chunk(chunk.audio[: 6 * 16000]) for chunk in speech] + longest
    sizes = [4, 2, 4, 2, 2]  # the last batch holds a 15-second segment: 120 tokens after a prompt of about 200
    expected = batched(eager, chunks, sizes)
    torch._dynamo.utils.counters.clear()
    assert batched(compiled, chunks, sizes) == expected
    assert not torch._dynamo.utils.counters["graph_break"]  # one graph per step: nothing runs between its kernels
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # one per batch size, none for the long one
    assert len({text for text, _ in expected}) > 1


def with_generation_config(model_dir: Path, target: Path, **settings: object) -> Path:
    """A copy of the checkpoint whose generation config also holds `settings`."""
    shutil.copytree(model_dir, target)
    config_file = target / "generation_config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | settings))
    return target


def test_the_loop_suppresses_the_tokens_the_generation_config_bars(
    tiny_glmasr_dir: Path, speech: list[Chunk], tmp_path: Path
) -> None:
    """A generation config that bars the end tokens (as the benchmark's full-size checkpoint does, so every segment
    uses its whole budget): the loop decodes what generate decodes, every segment to its budget."""
    barred = with_generation_config(tiny_glmasr_dir, tmp_path / "barred", suppress_tokens=[0, 2, 4])
    budget = TokenBudget(16, 16)
    chunks = speech[6:]  # three of these end early when the end tokens are allowed
    expected = GlmAsrEngine(barred, "cpu", torch.float32, budget).transcribe_batch(chunks)
    got = GlmAsrEngine(barred, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop")).transcribe_batch(chunks)
    assert [r.text for r in got] == [r.text for r in expected]
    assert [r.confidence for r in got] == pytest.approx([r.confidence for r in expected], abs=1e-4)
    unbarred = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget).transcribe_batch(chunks)
    longer = [len(b.text) > len(u.text) for b, u in zip(expected, unbarred, strict=True)]
    assert sum(longer) == 3 and all(b.text.startswith(u.text) for b, u in zip(expected, unbarred, strict=True))


def test_a_generation_config_the_loop_cannot_apply_is_decoded_by_generate(
    tiny_glmasr_dir: Path, speech: list[Chunk], tmp_path: Path
) -> None:
    """A checkpoint whose generation config asks for a repetition penalty: `ASR_GLM_DECODER=loop` does not ignore
    it, the engine decodes with generate and gives generate's results."""
    penalised = with_generation_config(tiny_glmasr_dir, tmp_path / "penalised", repetition_penalty=1.5)
    budget = TokenBudget(8, 8)
    chunks = speech[:4]
    with_generate = GlmAsrEngine(penalised, "cpu", torch.float32, budget).transcribe_batch(chunks)
    asked_for_loop = GlmAsrEngine(penalised, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    assert asked_for_loop.transcribe_batch(chunks) == with_generate
    unpenalised = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    assert unpenalised.transcribe_batch(chunks) != with_generate  # the penalty changes what is decoded
