"""GLM-ASR's model path on the CPU in float32 with the tiny checkpoint and the shared recordings: the engine gives
exactly what the model run directly (the documented processor + generate) gives, and its log-mel features, computed
over each segment's own samples, equal the feature extractor's 30-second padded ones."""

import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
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


@pytest.mark.parametrize(("decoder", "ahead"), [("generate", False), ("loop", False), ("loop", True)])
def test_engine_gives_what_the_model_run_directly_gives(
    tiny_glmasr_dir: Path, speech: list[Chunk], decoder: Literal["generate", "loop"], ahead: bool
) -> None:
    """`ahead`: the segments' inputs prepared before their batch, as the service does."""
    budget = TokenBudget(16, 16)
    engine = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder=decoder))
    chunks = engine.prepare(speech) if ahead else speech
    batched = [
        result for start in range(0, len(chunks), 4) for result in engine.transcribe_batch(chunks[start : start + 4])
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


def test_compiled_prefill_decodes_what_the_models_own_prefill_decodes(
    tiny_glmasr_dir: Path, speech: list[Chunk]
) -> None:
    """The prefill compiled once for prompts of every length (audio encoder, placement of its embeddings, prompt
    through the language model) gives the texts and confidences of the model's own forward, for batches of inputs
    from the processor and prepared ahead, in one graph without breaks. A segment longer than the encoder's window
    (two feature rows for one prompt) is prefilled by the model's own forward, and compiles nothing."""
    budget = TokenBudget(8, 8)
    eager = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    options = GlmAsrOptions(decoder="loop", compile_prefill=True, max_cache_tokens=700)
    compiled = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, options)
    two_windows = Chunk(np.concatenate([chunk.audio for chunk in speech])[: 31 * 16000])
    assert two_windows.duration == 31
    # Batches of 4, 3 and 4 rows, prompts of three lengths: one graph, its prompt length and batch size symbolic.
    batches = [speech[:4], [Chunk(chunk.audio[: 3 * 16000]) for chunk in speech[4:7]], speech[7:11], [two_windows]]
    expected = [[(r.text, r.confidence) for r in eager.transcribe_batch(batch)] for batch in batches]
    assert len({batch[0].audio.shape[0] for batch in batches}) == 4
    torch._dynamo.utils.counters.clear()
    for number, (batch, texts) in enumerate(zip(batches, expected, strict=True)):
        prepared = compiled.prepare(batch) if number % 2 else batch
        assert [(r.text, r.confidence) for r in compiled.transcribe_batch(prepared)] == texts
    assert not torch._dynamo.utils.counters["graph_break"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert len({text for batch in expected for text, _ in batch}) > 5


def with_config(model_dir: Path, target: Path, file_name: str, **settings: object) -> Path:
    """A copy of the checkpoint whose config file `file_name` also holds `settings`."""
    shutil.copytree(model_dir, target)
    config_file = target / file_name
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | settings))
    return target


def with_generation_config(model_dir: Path, target: Path, **settings: object) -> Path:
    return with_config(model_dir, target, "generation_config.json", **settings)


def test_attention_runs_through_sdpa_whatever_the_checkpoint_asks(
    tiny_glmasr_dir: Path, speech: list[Chunk], tmp_path: Path
) -> None:
    """A local copy whose config asks for eager attention (transformers honours it when nothing else is asked):
    both towers still run PyTorch's fused attention, and decode what the untouched checkpoint decodes."""
    eager = with_config(tiny_glmasr_dir, tmp_path / "eager", "config.json", attn_implementation="eager")
    as_saved = GlmAsrForConditionalGeneration.from_pretrained(eager)
    assert as_saved.config.text_config._attn_implementation == "eager"  # what a plain load would run
    budget = TokenBudget(8, 8)
    engine = GlmAsrEngine(eager, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    assert engine.attention == {"audio encoder": "sdpa", "language model": "sdpa"}
    untouched = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(decoder="loop"))
    assert engine.transcribe_batch(speech[:4]) == untouched.transcribe_batch(speech[:4])


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


def test_inputs_prepared_ahead_stack_to_the_processors_batch(tiny_glmasr_dir: Path, speech: list[Chunk]) -> None:
    """Segments prepared one block at a time (features and prompt tokens), then batched: exactly the tensors the
    processor gives for the batch, prompts of different lengths (hotwords) padded on the left as it pads them. While
    a segment waits in the queue it keeps only its own frames, not the 30-second window's."""
    engine = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(8, 8))
    terms = [(), ("朝阳区",), ("望京街道", "12345 热线", "市场监管局")]
    chunks = [Chunk(chunk.audio, hotwords=terms[i % 3]) for i, chunk in enumerate(speech)]
    chunks += [Chunk(np.zeros(16_000, dtype=np.float32)), Chunk(np.zeros(2_000, dtype=np.float32))]
    prepared = engine.prepare(chunks[:5]) + engine.prepare(chunks[5:])
    for start in range(0, len(chunks), 4):
        expected = engine._inputs(chunks[start : start + 4])
        got = engine._inputs(prepared[start : start + 4])
        assert got.keys() == expected.keys()
        for key, tensor in expected.items():
            assert got[key].dtype == tensor.dtype and torch.equal(got[key], tensor), key
    for chunk, ahead in zip(chunks, prepared, strict=True):
        frames = ahead.prepared.features.shape[1]  # type: ignore[union-attr]
        assert frames <= chunk.audio.shape[0] // 160 + 3  # 10 ms frames, and the transform's last window or two


def test_segments_it_cannot_prepare_are_left_to_their_batch(tiny_glmasr_dir: Path, speech: list[Chunk]) -> None:
    """A segment longer than the 30-second window (the processor splits it), features on the model's device, or
    inputs another engine made: the batch computes the inputs itself, and the results stay the model's."""
    budget = TokenBudget(8, 8)
    engine = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget)
    other = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget)
    long_call = Chunk(np.concatenate([chunk.audio for chunk in speech])[: 31 * 16000])
    assert engine.prepare([speech[0], long_call])[0].prepared is None
    on_device = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, budget, GlmAsrOptions(features_on_device=True))
    assert on_device.prepare(speech[:2])[0].prepared is None
    mixed = engine.prepare(speech[:2]) + speech[2:4]
    expected = engine.transcribe_batch(speech[:4])
    assert engine.transcribe_batch(mixed) == expected
    assert engine.transcribe_batch(other.prepare(speech[:4])) == expected


def test_preparing_on_many_threads_while_the_worker_decodes(tiny_glmasr_dir: Path, speech: list[Chunk]) -> None:
    """The service prepares segments on every preprocessing thread while the worker decodes and detokenises: no
    thread sees the tokenizer's "Already borrowed" error, and every prepared segment is the same."""
    engine = GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(8, 8))
    chunks = [Chunk(chunk.audio[: 3 * 16000], hotwords=("望京",) * (i % 2)) for i, chunk in enumerate(speech)]
    reference = [engine._inputs(chunks[i : i + 1]) for i in range(len(chunks))]
    stop = threading.Event()

    def decode_until_stopped() -> int:
        batches = 0
        while not stop.is_set():
            engine.transcribe_batch(chunks[:2])
            batches += 1
        return batches

    def prepare_each(offset: int) -> list[Chunk]:
        return [engine.prepare([chunks[(offset + i) % len(chunks)]])[0] for i in range(len(chunks))]

    with ThreadPoolExecutor(9) as pool:
        worker = pool.submit(decode_until_stopped)
        prepared = list(pool.map(prepare_each, range(8)))
        stop.set()
        assert worker.result() > 0
    for offset, rows in enumerate(prepared):
        for i, row in enumerate(rows):
            assert row.prepared is not None  # a failed preparation would leave it unset
            got, expected = engine._inputs([row]), reference[(offset + i) % len(chunks)]
            assert all(torch.equal(got[key], expected[key]) for key in expected)


RESTART = """
import json, sys, time
from pathlib import Path
import torch
from audio_factory import clip_samples
from asr_service.engines.base import Chunk, TokenBudget
from asr_service.engines.compilation import keep_compiled_kernels_in
from asr_service.engines.glm_asr import GlmAsrEngine, GlmAsrOptions

model, cache, clip = sys.argv[1:4]
keep_compiled_kernels_in(Path(cache))
engine = GlmAsrEngine(model, "cpu", torch.float32, TokenBudget(8, 8), GlmAsrOptions(decoder="loop", compile=True,
                      max_cache_tokens=300))
started = time.perf_counter()
engine.warm_up(range(1, 10))  # batches of up to 9: one more batch size than Dynamo compiles by default
warm_up_seconds = time.perf_counter() - started
speech = Chunk(clip_samples(clip)[0][: 6 * 16000])
texts = [(r.text, r.confidence) for r in engine.transcribe_batch([speech, speech])]
counters = torch._dynamo.utils.counters
print(json.dumps({"graphs": counters["stats"]["unique_graphs"], "hits": counters["inductor"]["fxgraph_cache_hit"],
                  "misses": counters["inductor"]["fxgraph_cache_miss"], "texts": texts,
                  "warm_up_seconds": warm_up_seconds}))
"""


def test_a_restarted_service_loads_its_compiled_graphs_from_the_cache(tiny_glmasr_dir: Path, tmp_path: Path) -> None:
    """The compiled decoding step is kept in the service's cache folder (private to its user), so a restart loads
    it instead of compiling again (261 s of start-up on an H100), and decodes the same. Every batch size gets its
    own graph, also past the 8 versions of one function that Dynamo compiles by default (`ASR_MAX_BATCH_SIZE=9`)."""
    import subprocess
    import sys

    cache = tmp_path / "compiled"
    tests = Path(__file__).parent

    def start() -> dict[str, object]:
        env = {**os.environ, "PYTHONPATH": str(tests)}
        env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        ran = subprocess.run(
            [sys.executable, "-c", RESTART, str(tiny_glmasr_dir), str(cache), MONO[0]],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        return json.loads(ran.stdout.strip().splitlines()[-1])

    first, restarted = start(), start()
    assert first["graphs"] == restarted["graphs"] == 9  # one per batch size, none left uncompiled
    assert first["misses"] >= 9 and first["hits"] == 0
    assert restarted["misses"] == 0 and restarted["hits"] >= 9
    assert restarted["texts"] == first["texts"]
    assert cache.stat().st_mode & 0o777 == 0o700


def test_the_operators_own_kernel_cache_wins_and_a_shared_one_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from asr_service.engines.compilation import keep_compiled_kernels_in

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "operators"))
    assert keep_compiled_kernels_in(tmp_path / "ours") == tmp_path / "operators"
    assert not (tmp_path / "ours").exists()

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(shared))
    with caplog.at_level("WARNING"):
        keep_compiled_kernels_in(tmp_path / "ours")
    assert "writable by other users" in caplog.text
