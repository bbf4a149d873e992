"""Per-field accuracy of the hotline analysis on the labelled set (tests/hotline_set.py), repeat-link precision and
recall, and the classifier's effect when trained on one half and judged on the other (disjoint) half.

    .venv/bin/python scripts/eval_hotline.py [--errors]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hotline_heldout import HELD_OUT  # noqa: E402
from hotline_set import CALLS  # noqa: E402
from hotline_third import THIRD  # noqa: E402

from asr_service.hotline.analysis import Analyzer  # noqa: E402
from asr_service.hotline.evaluation import run_calls, score  # noqa: E402
from asr_service.hotline.learning import CategoryModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--errors", action="store_true", help="list every wrong field")
    args = parser.parse_args()
    started = time.perf_counter()
    results = score(run_calls(CALLS, Analyzer.load()))
    elapsed = time.perf_counter() - started
    print(f"{results['calls']} calls, {elapsed / results['calls'] * 1000:.1f} ms per call")
    for field, accuracy in results["accuracy"].items():
        print(f"  {field:15s} {accuracy:.3f}")
    print(f"  repeat links    precision {results['repeat_precision']:.3f}  recall {results['repeat_recall']:.3f}")
    if args.errors:
        print(json.dumps(results["errors"], ensure_ascii=False, indent=1))
    for name, calls in (("second", HELD_OUT), ("third", THIRD)):
        later = score(run_calls(calls, Analyzer.load()))
        print(
            f"{name} set ({later['calls']} calls): " + ", ".join(f"{k} {v:.3f}" for k, v in later["accuracy"].items())
        )
    for train, test, name in ((CALLS[::2], CALLS[1::2], "even→odd"), (CALLS[1::2], CALLS[::2], "odd→even")):
        with tempfile.TemporaryDirectory() as folder:
            model = CategoryModel.fit([c["text"] for c in train], [c["category"] for c in train])
            model.save(Path(folder))
            rules = score(run_calls(test, Analyzer.load()))["accuracy"]["category"]
            combined = score(run_calls(test, Analyzer.load(model_dir=folder)))["accuracy"]["category"]
            alone = sum(model.pipeline.predict([c["text"]])[0] == c["category"] for c in test) / len(test)
        print(f"category, classifier trained {name} ({len(train)} calls): rules {rules:.3f}, "
              f"classifier alone {alone:.3f}, rules+classifier {combined:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
