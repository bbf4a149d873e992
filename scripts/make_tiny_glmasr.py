"""Build a tiny GLM-ASR checkpoint offline: `python scripts/make_tiny_glmasr.py OUT_DIR` (`--full-size`: the real
model's dimensions, for GPU tests and `scripts/bench_gpu.py`).

Random weights, a byte-level BPE tokenizer trained here with `tokenizers` on the real special tokens, the real chat
template and `WhisperFeatureExtractor(feature_size=128)`, all saved with `save_pretrained`, so the service loads it
through exactly the `from_pretrained` path used for zai-org/GLM-ASR-Nano-2512. It transcribes nothing meaningful;
it exercises the real architecture, processor and generation code in seconds on a CPU.
"""

import argparse
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    GlmAsrConfig,
    GlmAsrForConditionalGeneration,
    GlmAsrProcessor,
    PreTrainedTokenizerFast,
    WhisperFeatureExtractor,
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_audio|>",
    "<|end_of_audio|>",
    "<|pad|>",
]
END_TOKENS = ["<|endoftext|>", "<|user|>", "<|observation|>"]
"""The real model stops on these three (its eos_token_id list)."""

# The chat template shipped with zai-org/GLM-ASR-Nano-2512 (transformers' conversion script).
CHAT_TEMPLATE = """{%- macro to_text(content) -%}
{%- if content is string -%}
{{- content -}}
{%- elif content is iterable and content is not mapping -%}
{%- for item in content -%}
{%- if item is mapping and item.type == 'text' and item.text is defined -%}
{{- item.text -}}
{%- elif item is mapping and (item.type == 'audio' or 'audio' in item) -%}
<|begin_of_audio|><|pad|><|end_of_audio|><|user|>
{% elif item is string -%}
{{- item -}}
{%- endif -%}
{%- endfor -%}
{%- else -%}
{{- content -}}
{%- endif -%}
{%- endmacro -%}
{%- for m in messages -%}
{%- if m.role == 'system' -%}
<|system|>
{{ to_text(m.content) | trim }}
{%- elif m.role == 'user' -%}
<|user|>
{{ to_text(m.content) | trim }}
{%- elif m.role == 'assistant' -%}
<|assistant|>
{{ to_text(m.content) | trim }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|assistant|>
{% endif -%}"""

TRAINING_TEXT = [
    "Please transcribe this audio into text",
    "我想问我在滨海新区有房，广州市房地产中介协会分析，甚至出现交易几乎停滞的情况。",
    "您好，这里是12345政务服务便民热线，请问有什么可以帮您？小区门口的路灯坏了三天了。",
    "两只小企鹅都有嘢食，香港嘅消费市场从此不一样，我哋喺度等咗好耐，冇人理。",
    "And so my fellow Americans, ask not what your country can do for you.",
    "The birch canoe slid on the smooth planks. A gold ring will please most any girl.",
    "Be careful not to allow fabric to become too hot, which can cause shrinkage.",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_TEXT * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=SPECIAL_TOKENS[1:],
    )


def build_model(tokenizer: PreTrainedTokenizerFast) -> GlmAsrForConditionalGeneration:
    end_ids = [tokenizer.convert_tokens_to_ids(token) for token in END_TOKENS]
    config = GlmAsrConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "eos_token_id": end_ids,
            # No pad_token_id here: it would zero <|endoftext|>'s embedding row and the random model would
            # stop at once; random rows let it emit input-dependent tokens, so batching tests compare real text.
        },
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 128,  # the projector merges 4 encoder frames: intermediate = 4 x hidden
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_mel_bins": 128,
        },
        audio_token_id=tokenizer.convert_tokens_to_ids("<|pad|>"),
    )
    torch.manual_seed(0)
    model = GlmAsrForConditionalGeneration(config).eval()
    with torch.no_grad():
        # At the default init (std 0.02) a random decoder repeats one token whatever it hears; wider weights make
        # the output depend on the audio, so tests can tell one segment's transcript from another's.
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, 0.3)
    model.generation_config = GenerationConfig(
        eos_token_id=end_ids, pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64
    )
    return model


def make_tiny_glmasr(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    build_processor(tokenizer).save_pretrained(out_dir)
    build_model(tokenizer).save_pretrained(out_dir)
    return out_dir


def build_processor(tokenizer: PreTrainedTokenizerFast) -> GlmAsrProcessor:
    """The real chat template and feature extractor around the tiny tokenizer."""
    return GlmAsrProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )


def make_full_size_glmasr(out_dir: Path, dtype: torch.dtype = torch.float16, device: str = "cpu") -> Path:
    """`GlmAsrConfig()` defaults (GLM-ASR-Nano-2512's dimensions, 2.3B parameters) with random weights and the tiny
    tokenizer's special-token ids. Random weights decode arbitrary lengths, so the saved generation config
    suppresses the end tokens: every segment then emits exactly its token budget, and timings are comparable."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    end_ids = [tokenizer.convert_tokens_to_ids(token) for token in END_TOKENS]
    config = GlmAsrConfig(
        text_config={"eos_token_id": end_ids}, audio_token_id=tokenizer.convert_tokens_to_ids("<|pad|>")
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = GlmAsrForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(
        eos_token_id=end_ids, pad_token_id=tokenizer.pad_token_id, do_sample=False, suppress_tokens=end_ids
    )
    model.save_pretrained(out_dir)
    build_processor(tokenizer).save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--full-size", action="store_true", help="the real model's dimensions, random weights")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    args = parser.parse_args(argv)
    if args.full_size:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(make_full_size_glmasr(args.out_dir, getattr(torch, args.dtype), device))
    else:
        print(make_tiny_glmasr(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
