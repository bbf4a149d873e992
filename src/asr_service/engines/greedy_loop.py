"""Greedy decoding for GLM-ASR in our own loop: what `generate` computes, without its host work between steps.

`generate` makes the host wait for the device after every token (it reads whether all rows have ended), and runs
its Python bookkeeping (inputs, masks, logits processors, stopping criteria) between steps, so on a GPU each step
costs the sum of the host's and the device's time. This loop gives the device a whole step at once (the language
model on one token per row, the suppression of barred tokens, the argmax and the chosen token's log-probability) and
asks only every `check_every` steps whether every row has ended, so the host queues steps ahead of the device. With
`compile`, that step is compiled (CUDA graphs on a GPU) with a static KV cache kept per batch size; it compiles
whole, without graph breaks (tested), but a break on another device would only cost speed, not fail.

It computes the same thing as greedy `generate` with the checkpoint's generation config (tests compare tokens and
confidence on real recordings): the same prompt positions (left padding counted out), the same cache, the same
scores. Rows that end early keep decoding until the whole batch stops; their extra tokens are cut off by the caller
at the row's end token or budget, as `generate`'s padding tokens are. A generation config that asks for more than
suppressing tokens (penalties, n-gram bans) is not supported: `unsupported_reason` says why, and the engine then
uses `generate`.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, GlmAsrForConditionalGeneration, StaticCache

_NEUTRAL: dict[str, object] = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "force_words_ids": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "min_length": 0,
    "min_new_tokens": None,
    "guidance_scale": None,
    "watermarking_config": None,
}
"""Generation settings that would add a logits processor or a constraint this loop does not apply, at their values
that add none. Suppressed tokens (`suppress_tokens`) are applied; sampling and beams are not greedy decoding."""


def unsupported_reason(config: GenerationConfig) -> str | None:
    """Why greedy `generate` with this config would compute something this loop does not; None if it would not."""
    for name, neutral in _NEUTRAL.items():
        value = getattr(config, name, neutral)
        if value is not None and value != neutral:
            return f"the generation config sets {name}={value!r}"
    return None


_Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, StaticCache], tuple[torch.Tensor, torch.Tensor]]
"""One decoding step: (token, position, mask, cache) -> (next token, its log-probability), per row."""


@dataclass(frozen=True)
class DecodedRows:
    tokens: torch.Tensor
    """(batch, steps) token ids on the CPU; a row's tokens after its end token or budget are meaningless."""
    logprobs: torch.Tensor
    """(batch, steps) float32 log-probability of each chosen token, on the CPU."""
    prefill_done_at: float
    """When the first token was chosen, by the caller's clock."""


class GreedyLoop:
    def __init__(
        self,
        model: GlmAsrForConditionalGeneration,
        end_ids: list[int],
        suppress_ids: list[int],
        *,
        compile: bool = False,
        max_cache_tokens: int = 1024,
        check_every: int = 8,
    ) -> None:
        self._model = model
        self._device = model.device
        self._end_ids = torch.tensor(end_ids, device=self._device)
        vocab = model.config.text_config.vocab_size
        self._bias = torch.zeros(vocab, device=self._device)
        """Added to every step's scores: -inf on suppressed tokens, as `generate`'s suppression does."""
        if suppress_ids:
            self._bias[torch.tensor(suppress_ids, device=self._device)] = -math.inf
        self._max_cache_tokens = max_cache_tokens
        self._check_every = check_every
        self._caches: dict[int, StaticCache] = {}
        """With `compile`: one cache per batch size, reused (reset) so the compiled step finds the same tensors."""
        self._compiled_step = (
            torch.compile(self._decode_step, mode="reduce-overhead", fullgraph=False, dynamic=False)
            if compile
            else None
        )

    @torch.inference_mode()
    def decode(
        self, inputs: Mapping[str, torch.Tensor], budgets: list[int], clock: Callable[[], float] = time.perf_counter
    ) -> DecodedRows:
        """Greedy tokens for a padded batch (the processor's output on the model's device), each row for at most
        its budget, stopping once every row has produced an end token or used its budget. `clock` stamps the end
        of the prefill (a synchronising one when stages are timed)."""
        prompt_mask = inputs["attention_mask"]
        rows, prompt_length = prompt_mask.shape
        steps = max(budgets)
        cache, cache_length, next_step = self._cache(rows, prompt_length + steps)
        # One mask for every step: the prompt's (left padding masked out), then ones; causality hides what is
        # not yet written. Positions count from each row's first real token, as `generate`'s do.
        mask = torch.ones(rows, cache_length, dtype=prompt_mask.dtype, device=self._device)
        mask[:, :prompt_length] = prompt_mask
        positions = (prompt_mask.long().cumsum(-1) - 1).masked_fill(prompt_mask == 0, 0)
        logits = self._model(
            **{key: value for key, value in inputs.items() if key != "attention_mask"},
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        token, logprob = self._choose(logits[:, -1])
        prefill_done_at = clock()
        position = positions[:, -1:] + 1
        limits = torch.tensor(budgets, device=self._device)
        tokens, logprobs = [token], [logprob]
        ended = torch.isin(token, self._end_ids) | (limits <= 1)
        for step in range(1, steps):
            if step % self._check_every == 0 and bool(ended.all()):
                break  # the host waits for the device here, once per `check_every` steps
            token, logprob = next_step(token, position, mask, cache)
            position = position + 1
            tokens.append(token)
            logprobs.append(logprob)
            ended = ended | torch.isin(token, self._end_ids) | (limits <= step + 1)
        return DecodedRows(torch.stack(tokens, 1).cpu(), torch.stack(logprobs, 1).float().cpu(), prefill_done_at)

    def _cache(self, rows: int, needed: int) -> tuple[StaticCache, int, _Step]:
        """A cache for this batch, its length, and the step to decode on it: with `compile`, the cache kept for this
        batch size, reset, and the compiled step; otherwise (or for a batch that needs more) a new cache and the
        uncompiled step, so an odd batch never makes the step compile again."""
        config = self._model.config.text_config
        if self._compiled_step is None or needed > self._max_cache_tokens:
            return StaticCache(config=config, max_cache_len=needed), needed, self._decode_step
        cache = self._caches.get(rows)
        if cache is None:
            cache = self._caches[rows] = StaticCache(config=config, max_cache_len=self._max_cache_tokens)
        else:
            cache.reset()
        return cache, self._max_cache_tokens, self._replay_step

    def _replay_step(
        self, token: torch.Tensor, position: torch.Tensor, mask: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The compiled step. A CUDA graph's outputs live in buffers its next replay overwrites: each call starts a
        new step and keeps copies."""
        assert self._compiled_step is not None
        torch.compiler.cudagraph_mark_step_begin()
        token, logprob = self._compiled_step(token, position, mask, cache)
        return token.clone(), logprob.clone()

    def _decode_step(
        self, token: torch.Tensor, position: torch.Tensor, mask: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._model(
            input_ids=token[:, None], attention_mask=mask, position_ids=position, past_key_values=cache, use_cache=True
        ).logits
        return self._choose(logits[:, -1])

    def _choose(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The greedy token and its log-probability among the scores `generate` would see (float32, suppressed)."""
        return greedy_choice(logits.float() + self._bias)


def greedy_choice(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the highest-scoring token (the first on a tie, as argmax) and its log-probability: two reductions,
    no full-vocabulary softmax kept. The confidence of both decoders is built from this log-probability."""
    best = scores.max(dim=-1)
    return best.indices, best.values - torch.logsumexp(scores, dim=-1)
