"""Accuracy of the service vs. the embedded model run directly: `make eval` (or `python scripts/eval_accuracy.py`).

Prints mean error per language (CER for zh/yue, WER for en, in points) on the shared clips as they are, on 8 kHz
MP3 versions of them, and on a two-channel 8 kHz call built from them, for the service at its defaults (or with
`--set name=value` overrides of any setting) and for faster-whisper run directly with its own defaults, and the
service's wall time. `--compare name=value` (repeatable) runs the service again with one more override, so each
setting's accuracy and speed cost come from one run.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from evaluation import (  # noqa: E402
    Scores,
    in_process_transcriber,
    score_clips,
    score_long_call,
    shared_clips,
)
from faster_whisper import WhisperModel  # noqa: E402

from asr_service.config import Settings  # noqa: E402
from asr_service.engines.whisper_ct2 import assemble_embedded_model  # noqa: E402


def print_table(name: str, scores: Scores, seconds: float) -> None:
    means = scores.means()
    columns = [lang for lang in ("zh", "yue", "en", "all") if lang in means]
    print(f"\n{name} ({seconds:.0f} s; the service {scores.service_seconds:.1f} s)")
    print("| | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label, index in (("service", 0), ("model direct", 1)):
        print(f"| {label} | " + " | ".join(f"{100 * means[c][index]:.1f}" for c in columns) + " |")
    print("| service - direct | " + " | ".join(f"{100 * (means[c][0] - means[c][1]):+.1f}" for c in columns) + " |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="a setting override, e.g. beam_size=1")
    parser.add_argument("--verbose", action="store_true", help="print every item's texts")
    parser.add_argument("--only", choices=["shared", "narrowband", "long"], action="append")
    parser.add_argument("--compare", action="append", default=[], help="also run with this override (name=value)")
    args = parser.parse_args()
    base = dict(item.split("=", 1) for item in args.set)
    variants = [base, *({**base, **dict([item.split("=", 1)])} for item in args.compare)]
    model = WhisperModel(str(assemble_embedded_model(Settings().cache_dir)), device="cpu", compute_type="int8")
    clips = shared_clips()
    for overrides in variants:
        print("\nsettings:", overrides or "defaults")
        async with in_process_transcriber(Settings(model="whisper-base", **overrides)) as transcriber:
            for name in args.only or ["shared", "narrowband", "long"]:
                started = time.perf_counter()
                if name == "long":
                    scores = await score_long_call(transcriber, model, clips)
                else:
                    scores = await score_clips(transcriber, model, clips, as_narrowband=name == "narrowband")
                print_table(name, scores, time.perf_counter() - started)
                if args.verbose:
                    print("\n".join(scores.items))


if __name__ == "__main__":
    asyncio.run(main())
