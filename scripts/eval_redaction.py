"""Precision and recall of the personal-data masking per kind on the labelled set (`tests/redaction_set.py`), and
every miss: `python scripts/eval_redaction.py`."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from redaction_set import counts, labelled_set, score  # noqa: E402


def main() -> None:
    items = labelled_set()
    started = time.perf_counter()
    evaluation = score(items)
    elapsed = time.perf_counter() - started
    spans = sum(counts(items).values())
    print(f"{len(items)} sentences, {spans} labelled spans, {elapsed * 1000 / len(items):.2f} ms a sentence")
    print(f"{'kind':10} {'labelled':>8} {'precision':>9} {'recall':>7}")
    for kind, s in evaluation.kinds.items():
        labelled = s.true_positives + s.false_negatives
        print(f"{kind:10} {labelled:8d} {s.precision:9.3f} {s.recall:7.3f}")
    for miss in evaluation.misses:
        print(" ", miss)


if __name__ == "__main__":
    main()
